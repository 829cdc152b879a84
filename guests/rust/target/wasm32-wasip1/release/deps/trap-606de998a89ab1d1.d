/work/main/guests/rust/target/wasm32-wasip1/release/deps/trap-606de998a89ab1d1.d: src/bin/trap.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/trap-606de998a89ab1d1.wasm: src/bin/trap.rs

src/bin/trap.rs:

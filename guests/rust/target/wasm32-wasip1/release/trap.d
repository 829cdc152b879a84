/work/main/guests/rust/target/wasm32-wasip1/release/trap.wasm: /work/main/guests/rust/src/bin/trap.rs /work/main/guests/rust/src/lib.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/clocks-7ea5bc854ff596f7.d: src/bin/clocks.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/clocks-7ea5bc854ff596f7.wasm: src/bin/clocks.rs

src/bin/clocks.rs:

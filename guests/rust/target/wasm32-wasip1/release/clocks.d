/work/main/guests/rust/target/wasm32-wasip1/release/clocks.wasm: /work/main/guests/rust/src/bin/clocks.rs /work/main/guests/rust/src/lib.rs

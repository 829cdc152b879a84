/work/main/guests/rust/target/wasm32-wasip1/release/cat.wasm: /work/main/guests/rust/src/bin/cat.rs /work/main/guests/rust/src/lib.rs

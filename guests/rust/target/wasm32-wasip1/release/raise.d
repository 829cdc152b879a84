/work/main/guests/rust/target/wasm32-wasip1/release/raise.wasm: /work/main/guests/rust/src/bin/raise.rs /work/main/guests/rust/src/lib.rs

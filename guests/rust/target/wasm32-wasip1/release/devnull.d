/work/main/guests/rust/target/wasm32-wasip1/release/devnull.wasm: /work/main/guests/rust/src/bin/devnull.rs /work/main/guests/rust/src/lib.rs

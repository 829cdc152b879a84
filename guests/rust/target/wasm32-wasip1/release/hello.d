/work/main/guests/rust/target/wasm32-wasip1/release/hello.wasm: /work/main/guests/rust/src/bin/hello.rs /work/main/guests/rust/src/lib.rs

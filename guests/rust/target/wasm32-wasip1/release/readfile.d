/work/main/guests/rust/target/wasm32-wasip1/release/readfile.wasm: /work/main/guests/rust/src/bin/readfile.rs /work/main/guests/rust/src/lib.rs

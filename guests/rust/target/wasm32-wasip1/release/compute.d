/work/main/guests/rust/target/wasm32-wasip1/release/compute.wasm: /work/main/guests/rust/src/bin/compute.rs /work/main/guests/rust/src/lib.rs

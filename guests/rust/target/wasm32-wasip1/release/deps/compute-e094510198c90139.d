/work/main/guests/rust/target/wasm32-wasip1/release/deps/compute-e094510198c90139.d: src/bin/compute.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/compute-e094510198c90139.wasm: src/bin/compute.rs

src/bin/compute.rs:

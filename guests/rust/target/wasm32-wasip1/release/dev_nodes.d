/work/main/guests/rust/target/wasm32-wasip1/release/dev_nodes.wasm: /work/main/guests/rust/src/bin/dev_nodes.rs /work/main/guests/rust/src/lib.rs

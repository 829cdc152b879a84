/work/main/guests/rust/target/wasm32-wasip1/release/deps/dev_nodes-116ea5d8153073ea.d: src/bin/dev_nodes.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/dev_nodes-116ea5d8153073ea.wasm: src/bin/dev_nodes.rs

src/bin/dev_nodes.rs:

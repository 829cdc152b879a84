/work/main/guests/rust/target/wasm32-wasip1/release/deps/devnull-00d3c1d0d2704961.d: src/bin/devnull.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/devnull-00d3c1d0d2704961.wasm: src/bin/devnull.rs

src/bin/devnull.rs:

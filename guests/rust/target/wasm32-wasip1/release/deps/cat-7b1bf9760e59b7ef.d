/work/main/guests/rust/target/wasm32-wasip1/release/deps/cat-7b1bf9760e59b7ef.d: src/bin/cat.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/cat-7b1bf9760e59b7ef.wasm: src/bin/cat.rs

src/bin/cat.rs:

/work/main/guests/rust/target/wasm32-wasip1/release/deps/readfile-b998fb816fbae121.d: src/bin/readfile.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/readfile-b998fb816fbae121.wasm: src/bin/readfile.rs

src/bin/readfile.rs:

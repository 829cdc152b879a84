/work/main/guests/rust/target/wasm32-wasip1/release/deps/hello-fff18a0220004e07.d: src/bin/hello.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/hello-fff18a0220004e07.wasm: src/bin/hello.rs

src/bin/hello.rs:

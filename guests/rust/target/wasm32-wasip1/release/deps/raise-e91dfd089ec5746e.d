/work/main/guests/rust/target/wasm32-wasip1/release/deps/raise-e91dfd089ec5746e.d: src/bin/raise.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/raise-e91dfd089ec5746e.wasm: src/bin/raise.rs

src/bin/raise.rs:

/work/main/guests/rust/target/wasm32-wasip1/release/deps/wasmix_guests-129982de79232e75.d: src/lib.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/libwasmix_guests-129982de79232e75.rlib: src/lib.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/libwasmix_guests-129982de79232e75.rmeta: src/lib.rs

src/lib.rs:

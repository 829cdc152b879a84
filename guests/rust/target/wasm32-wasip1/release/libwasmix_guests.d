/work/main/guests/rust/target/wasm32-wasip1/release/libwasmix_guests.rlib: /work/main/guests/rust/src/lib.rs

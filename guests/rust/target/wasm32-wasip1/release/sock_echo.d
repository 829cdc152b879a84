/work/main/guests/rust/target/wasm32-wasip1/release/sock_echo.wasm: /work/main/guests/rust/src/bin/sock_echo.rs /work/main/guests/rust/src/lib.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/sock_echo-1e11417b9dd79f59.d: src/bin/sock_echo.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/sock_echo-1e11417b9dd79f59.wasm: src/bin/sock_echo.rs

src/bin/sock_echo.rs:

/work/main/guests/rust/target/wasm32-wasip1/release/args_env.wasm: /work/main/guests/rust/src/bin/args_env.rs /work/main/guests/rust/src/lib.rs

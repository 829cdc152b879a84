/work/main/guests/rust/target/wasm32-wasip1/release/deps/args_env-41aedf01ca6ddca2.d: src/bin/args_env.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/args_env-41aedf01ca6ddca2.wasm: src/bin/args_env.rs

src/bin/args_env.rs:

/work/main/guests/rust/target/wasm32-wasip1/release/poll.wasm: /work/main/guests/rust/src/bin/poll.rs /work/main/guests/rust/src/lib.rs

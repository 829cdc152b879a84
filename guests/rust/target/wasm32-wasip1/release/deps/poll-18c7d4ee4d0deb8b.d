/work/main/guests/rust/target/wasm32-wasip1/release/deps/poll-18c7d4ee4d0deb8b.d: src/bin/poll.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/poll-18c7d4ee4d0deb8b.wasm: src/bin/poll.rs

src/bin/poll.rs:

/work/main/guests/rust/target/wasm32-wasip1/release/deps/fs_conformance-d993c9f7be8b9f08.d: src/bin/fs_conformance.rs

/work/main/guests/rust/target/wasm32-wasip1/release/deps/fs_conformance-d993c9f7be8b9f08.wasm: src/bin/fs_conformance.rs

src/bin/fs_conformance.rs:

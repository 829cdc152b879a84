/work/main/guests/rust/target/wasm32-wasip1/release/fs_conformance.wasm: /work/main/guests/rust/src/bin/fs_conformance.rs /work/main/guests/rust/src/lib.rs

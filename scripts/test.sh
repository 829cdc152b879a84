#!/usr/bin/env bash
# Sets up a fresh machine (idempotently) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
guests/build.sh
cargo test --workspace --all-targets
cargo test --workspace --doc
# The containerd shim under a private containerd (it needs root, as containerd does).
if [ "$(id -u)" = 0 ]; then
    PROFILE=dev scripts/containerd-test.sh
else
    echo "test.sh: not root, so the containerd tests (scripts/containerd-test.sh) did not run" >&2
fi
# The journal reader and sequences of host calls against hostile input, for a bounded time.
scripts/fuzz.sh "${WASMIX_FUZZ_SECONDS:-60}"
# Loom models of the process model's concurrency (own target dir: --cfg loom rebuilds the crate).
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p wasmix-process --test loom --release

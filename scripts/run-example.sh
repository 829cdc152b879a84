#!/usr/bin/env bash
# Sets up a fresh machine (idempotently), builds wasmix and runs an example guest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
guests/build.sh
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
set -x
target/release/wasmix run guests/out/hello.wasm
target/release/wasmix run --env GREETING=hi guests/out/args_env.wasm one two
target/release/wasmix run --dir "$scratch::/" guests/out/fs_conformance.wasm readdir symlinks links
# WASIX: a parent spawns `child` (found along PATH in /bin) with its stdout on a pipe.
target/release/wasmix run --dir guests/out::/bin guests/out/spawner.wasm pipe
# Eight threads over shared memory, locks and condition variables.
target/release/wasmix run guests/out/threads.wasm basic

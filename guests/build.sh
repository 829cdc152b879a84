#!/usr/bin/env bash
# Builds every guest program into guests/out/. Needs the tools scripts/setup.sh installs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/out"
mkdir -p "$out"

# Rust guests (wasm32-wasip1).
(cd "$here/rust" && cargo build --quiet --release --target wasm32-wasip1)
for wasm in "$here"/rust/target/wasm32-wasip1/release/*.wasm; do
    cp "$wasm" "$out/"
done

# Multi-threaded Rust guests (wasm32-wasip1-threads).
(cd "$here/rust-threads" && cargo build --quiet --release --target wasm32-wasip1-threads)
for wasm in "$here"/rust-threads/target/wasm32-wasip1-threads/release/*.wasm; do
    cp "$wasm" "$out/"
done

# C guests (Debian clang + wasi-libc).
for src in "$here"/c/*.c; do
    name="$(basename "$src" .c)"
    if [ ! "$out/$name.wasm" -nt "$src" ]; then
        clang-16 --target=wasm32-wasi -O2 -Wall -Werror "$src" -o "$out/$name.wasm"
    fi
done

# WAT guests run as text.
cp "$here"/wat/*.wat "$out/"

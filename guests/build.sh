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

# Programs that fork ship asyncify-instrumented, as WASIX toolchains build them (the same
# pass wasmix runs itself on modules that lack it; stacks.c is left to wasmix on purpose).
asyncify() {
    wasm-opt "$1" -O2 --asyncify \
        --pass-arg=asyncify-imports@wasix_32v1.proc_fork,wasix_32v1.stack_checkpoint -g -o "$2"
}
asyncify "$here/rust/target/wasm32-wasip1/release/forker.wasm" "$out/forker.wasm"
asyncify "$here/rust-threads/target/wasm32-wasip1-threads/release/fork_threads.wasm" "$out/fork_threads.wasm"
cp "$here/rust/target/wasm32-wasip1/release/forker.wasm" "$out/forker_plain.wasm"

# C guests (Debian clang + wasi-libc).
for src in "$here"/c/*.c; do
    name="$(basename "$src" .c)"
    if [ ! "$out/$name.wasm" -nt "$src" ]; then
        clang-16 --target=wasm32-wasi -O2 -Wall -Werror "$src" -o "$out/$name.wasm"
    fi
done

# Exception-handling guests: clang-16 emits the legacy encoding, which wasmix translates at
# load. Debian's wasm32 libc++abi has no exception support and its 2022 wasi-libc no setjmp,
# so each guest brings the small runtime it needs (c-eh/*rt.c).
eh="$here/c-eh"
if [ ! "$out/cxx_exceptions.wasm" -nt "$eh/cxx_exceptions.cpp" ] || [ ! "$out/cxx_exceptions.wasm" -nt "$eh/cxxrt.c" ]; then
    clang++-16 --target=wasm32-wasi -O2 -Wall -Werror -fwasm-exceptions -nostdinc++ -nostdlib++ \
        "$eh/cxx_exceptions.cpp" -x c "$eh/cxxrt.c" -lc++abi -o "$out/cxx_exceptions.wasm"
fi
if [ ! "$out/sjlj_vfork.wasm" -nt "$eh/sjlj_vfork.c" ] || [ ! "$out/sjlj_vfork.wasm" -nt "$eh/sjljrt.c" ]; then
    clang-16 --target=wasm32-wasi -O2 -Wall -Werror -mexception-handling -mllvm -wasm-enable-sjlj \
        "$eh/sjlj_vfork.c" "$eh/sjljrt.c" -o "$out/sjlj_vfork.wasm"
fi

# WAT guests run as text.
cp "$here"/wat/*.wat "$out/"

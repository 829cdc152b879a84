#!/usr/bin/env bash
# Fuzzes for a bounded time: scripts/fuzz.sh [SECONDS] (default 60, split between the two
# targets; CI runs this; run longer on demand, e.g. scripts/fuzz.sh 3600):
# - the journal reader against hostile files (crates/wasmix-journal/fuzz, target reader);
# - sequences of host calls with wild arguments and memory in one process
#   (crates/wasmix-runtime/fuzz, target host_calls; seeds committed in its seeds/ folder).
# Installs cargo-fuzz if missing. Stable rustc runs libFuzzer's instrumentation with
# RUSTC_BOOTSTRAP (no nightly toolchain can be fetched here); Rust's own checks stand in for
# a sanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
half=$(( (seconds + 1) / 2 ))
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
(cd crates/wasmix-journal && RUSTC_BOOTSTRAP=1 cargo fuzz run reader --sanitizer none -- \
    -max_total_time="$half" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1)
mkdir -p crates/wasmix-runtime/fuzz/corpus/host_calls
(cd crates/wasmix-runtime && RUSTC_BOOTSTRAP=1 cargo fuzz run host_calls --sanitizer none \
    fuzz/corpus/host_calls fuzz/seeds/host_calls -- \
    -max_total_time="$half" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1)

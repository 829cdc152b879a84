#!/usr/bin/env bash
# Fuzzes the journal reader for a bounded time: scripts/fuzz.sh [SECONDS] (default 60; CI
# runs this; run longer on demand, e.g. scripts/fuzz.sh 3600). Installs cargo-fuzz if missing.
# Stable rustc runs libFuzzer's instrumentation with RUSTC_BOOTSTRAP (no nightly toolchain
# can be fetched here); Rust's own checks stand in for a sanitizer.
set -euo pipefail
cd "$(dirname "$0")/../crates/wasmix-journal"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
RUSTC_BOOTSTRAP=1 cargo fuzz run reader --sanitizer none -- \
    -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1

#!/usr/bin/env bash
# Sets up a fresh machine (idempotently) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
guests/build.sh
cargo test --workspace --all-targets
cargo test --workspace --doc

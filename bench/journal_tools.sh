#!/usr/bin/env bash
# `wasmix journal verify` (every byte's checksum) and `inspect` (frame headers and records)
# of a ~1 GiB journal (one snapshot of 960 MiB of incompressible memory), side by side with
# `cat FILE >/dev/null` (reading the same bytes, checking nothing) in one run: page cache
# warm, and cold (caches dropped before each run) where this machine allows it (root).
# REPS runs each (default 5); hyperfine medians.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
guests/build.sh
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
W="$PWD/target/release/wasmix"
export WASMIX_CACHE_DIR="$out/cache"
REPS="${REPS:-5}"
"$W" run --journal "$out/j" guests/out/snapbench.wasm durable 960 >/dev/null
bytes=$(stat -c %s "$out/j")
echo "journal: $bytes bytes"
hyperfine --style none -N --warmup 1 --runs "$REPS" --export-json "$out/warm.json" \
    "$W journal verify $out/j" "$W journal inspect $out/j" "cat $out/j" >/dev/null 2>&1
report() {
    python3 - "$1" "$bytes" "$2" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["results"]
size = int(sys.argv[2])
for r in runs:
    name = r["command"].split()[1:3] if "wasmix" in r["command"] else ["cat"]
    med = r["median"]
    print(f"{sys.argv[3]:5} {' '.join(name):16} median {med*1000:8.1f} ms  {size/med/1e9:6.2f} GB/s")
PY
}
report "$out/warm.json" warm
if [ -w /proc/sys/vm/drop_caches ]; then
    hyperfine --style none -N --runs "$REPS" --export-json "$out/cold.json" \
        --prepare "sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'" \
        "$W journal verify $out/j" "cat $out/j" >/dev/null 2>&1
    report "$out/cold.json" cold
else
    echo "cold: not measured (cannot drop the page cache here)"
fi

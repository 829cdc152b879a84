#!/usr/bin/env bash
# Instant start: a guest that takes about a second to build its tables before it serves
# stdin (guests/rust/src/bin/warmup.rs), started cold beside restored from a snapshot taken
# at its first read of stdin (`--snapshot-on first-stdin`), side by side in one run.
# REPS runs each (default 10); medians and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
guests/build.sh
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
W="$PWD/target/release/wasmix"
G="$PWD/guests/out/warmup.wasm"
export WASMIX_CACHE_DIR="$out/cache"
REPS="${REPS:-10}"
echo 12345 >"$out/in"
# Warm the module cache for both instrumentations, then take the snapshot.
"$W" run "$G" <"$out/in" >/dev/null
"$W" run --journal "$out/j" --snapshot-on first-stdin --stop-after-snapshot "$G" </dev/null \
    >/dev/null 2>&1 || true
cold=$("$W" run "$G" <"$out/in")
warm=$("$W" run --journal "$out/j" "$G" <"$out/in")
[ "$cold" = "$warm" ] || { echo "a restore answered differently: $warm vs $cold" >&2; exit 1; }
hyperfine --style none --warmup 2 --runs "$REPS" --export-json "$out/r.json" \
    "$W run $G < $out/in" "$W run --journal $out/j $G < $out/in" >/dev/null
python3 - "$out/r.json" "$(stat -c %s "$out/j")" <<'PY'
import json, sys
r = [x["median"] for x in json.load(open(sys.argv[1]))["results"]]
print("| measure | median | ratio |")
print("|---|---|---|")
print(f"| cold start to the first answer | {r[0]*1e3:.1f} ms | — |")
print(f"| restore from the first-stdin snapshot to the first answer | {r[1]*1e3:.2f} ms | {r[0]/r[1]:.0f}x faster |")
print(f"| journal size | {int(sys.argv[2])/2**20:.1f} MiB | — |")
PY

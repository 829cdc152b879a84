#!/usr/bin/env bash
# The suite's C programs the way a benchmark harness runs them (Sightglass's shape): built
# with -DBENCH_HARNESS they import `bench.start`/`bench.end`, linked from bench.wat with
# `--preload bench=...`. Side by side, alternating rounds: wasmtime, wasmix, and wasmix with
# interruption checks forced on (`--timeout 60m`: what any preload got before 2026-12-02).
#
#   bench/suite/harness.sh            3 rounds of 3 runs each
#   ROUNDS=5 bench/suite/harness.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
scripts/setup.sh
cargo build --release --quiet -p wasmix
WASMTIME="$(bench/wasmtime.sh)"
W="$root/target/release/wasmix"
S="$here/bench.wat"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
export WASMIX_CACHE_DIR="$out/cache"
cases="vm:6 kv:4 sort:2 loops:5 nbody:40 bytes:10"
for c in $cases; do
    p="${c%:*}" n="${c#*:}"
    clang-16 --target=wasm32-wasi -O2 -Wall -Werror -DBENCH_HARNESS "$here/c/$p.c" \
        -o "$out/$p.wasm" -lm
    want="$("$WASMTIME" run --preload "bench=$S" "$out/$p.wasm" "$n")"
    for flags in "" "--timeout 60m"; do
        # shellcheck disable=SC2086
        got="$("$W" run --preload "bench=$S" $flags "$out/$p.wasm" "$n")"
        [ "$got" = "$want" ] || { echo "$p under wasmix $flags printed $got, not $want" >&2; exit 1; }
    done
    for r in $(seq "${ROUNDS:-3}"); do
        hyperfine -N --style none --runs 3 --export-json "$out/$p.$r.json" \
            "$WASMTIME run --preload bench=$S $out/$p.wasm $n" \
            "$W run --preload bench=$S $out/$p.wasm $n" \
            "$W run --preload bench=$S --timeout 60m $out/$p.wasm $n" >/dev/null
    done
done
python3 - "$out" $cases <<'PY'
import glob, json, math, statistics, sys
out, cases = sys.argv[1], [c.split(":") for c in sys.argv[2:]]
print("| program | wasmtime | wasmix | ratio | wasmix, checks forced on | ratio |")
print("|---|---|---|---|---|---|")
plain, checked = [], []
for p, n in cases:
    times = [[], [], []]
    for f in glob.glob(f"{out}/{p}.*.json"):
        for i, r in enumerate(json.load(open(f))["results"]):
            times[i].extend(r["times"])
    wt, wx, ck = (statistics.median(t) for t in times)
    plain.append(wx / wt); checked.append(ck / wt)
    print(f"| {p} {n} | {wt*1e3:.0f} ms | {wx*1e3:.0f} ms | {wx/wt:.3f} | {ck*1e3:.0f} ms | {ck/wt:.3f} |")
g = lambda xs: math.exp(sum(map(math.log, xs)) / len(xs))
print(f"| geomean | | | {g(plain):.3f} | | {g(checked):.3f} |")
PY

#!/usr/bin/env bash
# Stack-capture benchmarks side by side with native Linux, in one run: fork + child exit +
# join with 1 MiB and with 64 MiB of touched memory (against native fork of a process of the
# same size), and, reported alone, a setjmp+longjmp round trip and the unwind + rewind of a
# 100-frame stack. Each runs REPS times, alternating; the table gives medians and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
guests/build.sh
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
gcc -O2 bench/native_fork.c -o "$out/native"
W="$PWD/target/release/wasmix"
G="$PWD/guests/out"
export WASMIX_CACHE_DIR="$out/cache"
REPS="${REPS:-7}"

for r in $(seq "$REPS"); do
    {
        "$W" run "$G/forker.wasm" bench 1 300
        "$out/native" 1 300
        "$W" run "$G/forker.wasm" bench 64 60
        "$out/native" 64 60
        "$W" run "$G/stacks.wasm" bench 20000
    } 2>/dev/null | sed "s/^/$r /"
done > "$out/results"

python3 - "$out/results" <<'PY'
import sys, statistics, collections
vals = collections.defaultdict(list)
seen = collections.Counter()
order = []
for line in open(sys.argv[1]):
    rep, name, value, unit = line.split()
    side = "wasmix" if seen[(rep, name)] == 0 else "native"
    seen[(rep, name)] += 1
    if name not in order:
        order.append(name)
    vals[(name, side)].append(float(value))
print("| benchmark | wasmix (median) | native (median) | ratio |")
print("|---|---|---|---|")
for name in order:
    w = statistics.median(vals[(name, "wasmix")])
    n = vals.get((name, "native"))
    n = statistics.median(n) if n else None
    ns = f"{n/1e3:.2f} µs" if n else "-"
    ratio = f"{w/n:.2f}x" if n else "-"
    print(f"| {name} | {w/1e3:.2f} µs | {ns} | {ratio} |")
PY

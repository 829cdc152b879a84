#!/usr/bin/env bash
# Two wasmix builds side by side in one run, on the same guests: the workloads of compare.sh
# (start, compute, fd_write per call) and wasix.sh (spawn, threads, futex, signals, pipes).
# For checking that a change moves no number beyond noise:
#   bench/ab.sh /path/to/old/wasmix [/path/to/new/wasmix]   (new defaults to this tree's)
# Medians and new/old ratios; each pair alternates so drift on the shared VM hits both.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD="$(realpath "${1:?usage: bench/ab.sh OLD_WASMIX [NEW_WASMIX]}")"
NEW="$(realpath "${2:-target/release/wasmix}")"
[ -n "${2:-}" ] || cargo build --release --quiet
[ -x "$OLD" ] && [ -x "$NEW" ] || { echo "both binaries must exist and be executable" >&2; exit 2; }
scripts/setup.sh
guests/build.sh
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
G="$PWD/guests/out"
RUNS="${RUNS:-40}"
REPS="${REPS:-7}"
export WASMIX_CACHE_DIR_OLD="$out/cache-old" WASMIX_CACHE_DIR_NEW="$out/cache-new"
old() { WASMIX_CACHE_DIR="$WASMIX_CACHE_DIR_OLD" "$OLD" "$@"; }
new() { WASMIX_CACHE_DIR="$WASMIX_CACHE_DIR_NEW" "$NEW" "$@"; }

for m in hello compute devnull bench; do old run "$G/$m.wasm" 1 >/dev/null 2>&1 || true; new run "$G/$m.wasm" 1 >/dev/null 2>&1 || true; done
hf() { hyperfine --style none --warmup 3 --runs "$RUNS" -N --export-json "$out/$1.json" "${@:2}" >/dev/null; }
hf hello "env WASMIX_CACHE_DIR=$out/cache-old $OLD run $G/hello.wasm" "env WASMIX_CACHE_DIR=$out/cache-new $NEW run $G/hello.wasm"
hf compute "env WASMIX_CACHE_DIR=$out/cache-old $OLD run $G/compute.wasm" "env WASMIX_CACHE_DIR=$out/cache-new $NEW run $G/compute.wasm"
hf write \
    "env WASMIX_CACHE_DIR=$out/cache-old $OLD run --dir /tmp::/tmp $G/devnull.wasm 1000000" "env WASMIX_CACHE_DIR=$out/cache-old $OLD run --dir /tmp::/tmp $G/devnull.wasm 0" \
    "env WASMIX_CACHE_DIR=$out/cache-new $NEW run --dir /tmp::/tmp $G/devnull.wasm 1000000" "env WASMIX_CACHE_DIR=$out/cache-new $NEW run --dir /tmp::/tmp $G/devnull.wasm 0"

for r in $(seq "$REPS"); do
    for side in old new; do
        {
            $side run --dir "$G::/bin" "$G/spawner.wasm" bench-spawn 1000
            $side run "$G/bench.wasm" threads 2000
            $side run "$G/bench.wasm" futex 20000
            $side run "$G/bench.wasm" signal-blocked 1000
            $side run "$G/bench.wasm" signal-compute 1000
            $side run --dir "$G::/bin" "$G/spawner.wasm" bench-pipe 1024
        } 2>/dev/null | sed "s/^/$side /"
    done
done > "$out/wasix"

python3 - "$out" <<'PY'
import json, sys, statistics, collections
d = sys.argv[1]
med = lambda n: [r["median"] for r in json.load(open(f"{d}/{n}.json"))["results"]]
h, c, w = med("hello"), med("compute"), med("write")
rows = [("hello start, warm cache", h[0] * 1e3, h[1] * 1e3, "ms"),
        ("compute guest", c[0] * 1e3, c[1] * 1e3, "ms"),
        ("fd_write 1 byte to /dev/null, per call", (w[0] - w[1]) * 1e3, (w[2] - w[3]) * 1e3, "ns")]
vals = collections.defaultdict(list)
for line in open(f"{d}/wasix"):
    side, name, value, unit = line.split()
    vals[(name, side)].append(float(value))
for name in ["spawn_exit_join", "thread_spawn_join", "futex_one_way", "signal_blocked_p50",
             "signal_compute_p50", "pipe_throughput"]:
    o, n = vals.get((name, "old")), vals.get((name, "new"))
    if o and n:
        gbs = name == "pipe_throughput"
        s = 1 if gbs else 1e-3
        rows.append((name, statistics.median(o) * s, statistics.median(n) * s, "GB/s" if gbs else "µs"))
print("| benchmark | old (median) | new (median) | new/old |")
print("|---|---|---|---|")
for name, o, n, unit in rows:
    print(f"| {name} | {o:.2f} {unit} | {n:.2f} {unit} | {n / o:.3f} |")
PY

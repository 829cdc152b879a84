#!/usr/bin/env bash
# WASIX benchmarks side by side with the same operations done natively, in one run:
# spawn+exit+join, thread spawn+join (Rust's std::thread, and wasi-libc's pthread_create),
# futex ping-pong, signal latency (blocked in a host call
# and in a pure compute loop), pipe throughput between two processes. Each pair runs REPS
# times, alternating; the table gives medians and ratios for docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
guests/build.sh
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
gcc -O2 -pthread bench/native_wasix.c -o "$out/native"
W="$PWD/target/release/wasmix"
G="$PWD/guests/out"
export WASMIX_CACHE_DIR="$out/cache"
REPS="${REPS:-7}"

for r in $(seq "$REPS"); do
    {
        "$W" run --dir "$G::/bin" "$G/spawner.wasm" bench-spawn 1000
        "$out/native" spawn 300
        "$W" run "$G/bench.wasm" threads 2000
        "$out/native" threads 2000
        # The same with the guest calling wasi-libc's pthread_create directly (no Rust std
        # around it), as a C program would: the native side is the same C program.
        "$W" run "$G/bench.wasm" pthreads 2000
        "$out/native" threads 2000 | sed 's/^thread_spawn_join /pthread_create_join /'
        "$W" run "$G/bench.wasm" futex 20000
        "$out/native" futex 20000
        "$W" run "$G/bench.wasm" signal-blocked 1000
        "$out/native" signal 1000
        "$W" run "$G/bench.wasm" signal-compute 1000
        "$W" run --dir "$G::/bin" "$G/spawner.wasm" bench-pipe 1024
        "$out/native" pipe 1024
    } 2>/dev/null | sed "s/^/$r /"
done > "$out/results"

python3 - "$out/results" <<'PY'
import sys, statistics, collections
# Lines alternate wasmix, native for each measure; collect per (measure, side).
vals = collections.defaultdict(list)
order = ["spawn_exit_join", "thread_spawn_join", "pthread_create_join", "futex_one_way", "signal_blocked_p50",
         "signal_blocked_p99", "signal_compute_p50", "signal_compute_p99", "pipe_throughput"]
seen = collections.Counter()
for line in open(sys.argv[1]):
    rep, name, value, unit = line.split()
    key = (rep, name)
    side = "wasmix" if seen[key] == 0 else "native"
    seen[key] += 1
    vals[(name, side)].append(float(value))
def med(name, side):
    v = vals.get((name, side))
    return statistics.median(v) if v else None
print("| benchmark | wasmix (median) | native (median) | ratio |")
print("|---|---|---|---|")
for name in order:
    w, n = med(name, "wasmix"), med(name, "native")
    unit = "GB/s" if name == "pipe_throughput" else "µs"
    scale = 1 if unit == "GB/s" else 1e-3
    ws = f"{w*scale:.2f} {unit}" if w is not None else "-"
    ns = f"{n*scale:.2f} {unit}" if n is not None else "-"
    ratio = f"{w/n:.2f}x" if w and n else "-"
    print(f"| {name} | {ws} | {ns} | {ratio} |")
PY

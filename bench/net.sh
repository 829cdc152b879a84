#!/usr/bin/env bash
# Networking benchmarks side by side with the same operations done natively
# (bench/native_net.c), in one run, alternating: loopback TCP throughput guest to guest,
# epoll_wait wake-up round trips (both sides pinned to one CPU: unpinned, a cross-CPU
# wake-up on this 2-vCPU VM costs 60-80 µs at random, natively and under wasmix alike), and
# requests per second of an HTTP/1.0 file server under wrk: the guest `net.wasm http` under
# wasmix and under Wasmer (PyPI wasmer-sdk), and the native C server, serving the same 4 KiB
# file one connection at a time. REPS rounds (default 5); medians and ratios for
# docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
python3 -c "import wasmer_sdk" 2>/dev/null || pip install -q wasmer-sdk==0.5.0
cargo build --release --quiet
guests/build.sh
out="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT
gcc -O2 -Wall bench/native_net.c -o "$out/native"
W="$PWD/target/release/wasmix"
G="$PWD/guests/out"
export WASMIX_CACHE_DIR="$out/cache"
REPS="${REPS:-5}"
head -c 4096 /dev/urandom > "$out/file"

# Starts a server command in the background, waits for its "listening PORT" line, runs wrk
# against it and prints requests per second.
rps() {
    "$@" > "$out/server.out" 2>/dev/null &
    local pid=$!
    until grep -q listening "$out/server.out" 2>/dev/null; do sleep 0.05; done
    local port
    port="$(awk '/listening/ {print $2}' "$out/server.out")"
    wrk -t2 -c8 -d5s "http://127.0.0.1:$port/file" | awk '/Requests\/sec/ {print $2}'
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

for r in $(seq "$REPS"); do
    echo "tcp_throughput_MiBps wasmix $("$W" run --net "$G/net.wasm" bench-tcp 1024 | awk '{print $2}' | tail -1)"
    echo "tcp_throughput_MiBps native $("$out/native" tcp 1024 | awk '{print $2}' | tail -1)"
    echo "epoll_round_trip_us wasmix $(taskset -c 0 "$W" run "$G/net.wasm" bench-epoll 5000 | awk '{print $2}')"
    echo "epoll_round_trip_us native $(taskset -c 0 "$out/native" epoll 5000 | awk '{print $2}')"
    echo "http_rps wasmix $(rps "$W" run --net --dir "$out::/srv" "$G/net.wasm" http /srv/file 1000000000)"
    echo "http_rps native $(rps "$out/native" http "$out/file")"
    echo "http_rps wasmer $(rps python3 bench/wasmer_http.py "$G/net.wasm" "$out/file" 20)"
done > "$out/results"

python3 - "$out/results" <<'PY'
import sys, statistics, collections
vals = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    name, side, value = line.split()
    vals[name][side].append(float(value))
print("| measure | wasmix | native | wasmer | wasmix / native |")
print("|---|---|---|---|---|")
for name, sides in vals.items():
    m = {s: statistics.median(v) for s, v in sides.items()}
    wm = f"{m['wasmer']:.1f}" if "wasmer" in m else "—"
    print(f"| {name} | {m['wasmix']:.1f} | {m['native']:.1f} | {wm} | {m['wasmix'] / m['native']:.2f} |")
PY

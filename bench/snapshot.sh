#!/usr/bin/env bash
# Snapshot and restore measurements, side by side with their references in one run: the
# stop (the longest a thread is held at the snapshot's barrier, from the runtime's debug
# log) and the longest a computing thread is held over the whole snapshot (as it measures
# itself) for guests with 64 and 256 MiB touched, durable
# time for 256 MiB of incompressible memory beside `dd conv=fsync` of the same bytes, restore
# of a 64 MiB guest to its first instruction after the snapshot, the pause with 8 idle
# threads, an incremental snapshot (256 MiB, 1 % of pages changed in 8 bytes, or rewritten
# whole; durable beside a computing thread and, as for the full snapshot, without one)
# beside the same one written whole, and what instrumenting for snapshots costs (compiled size, compute speed).
# REPS rounds each (default 5); medians. CRIU's dump and restore of the native equivalent
# (bench/criu.sh) run after them when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
guests/build.sh
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
W="$PWD/target/release/wasmix"
G="$PWD/guests/out"
export WASMIX_CACHE_DIR="$out/cache"
REPS="${REPS:-5}"
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { grep "^$1 " | awk '{print $2}'; }

# Warm the compiled-module cache for both instrumentations.
"$W" run --journal "$out/warm" "$G/snapbench.wasm" durable 1 >/dev/null
"$W" run "$G/compute.wasm" >/dev/null
"$W" run --journal "$out/warm2" "$G/compute.wasm" >/dev/null

for r in $(seq "$REPS"); do
    for mib in 64 256; do
        rm -f "$out/j"
        WASMIX_LOG=wasmix_runtime::snapshot=debug NO_COLOR=1 \
            "$W" run --journal "$out/j" "$G/snapbench.wasm" memory "$mib" >"$out/o" 2>"$out/e"
        field pause_ns <"$out/o" >>"$out/pause$mib"
        # The stop: the longest any thread was held at the snapshot's barrier.
        sed -n 's/.*held for \([0-9]*\) µs.*/\1/p' "$out/e" | sort -n | tail -1 >>"$out/stop$mib"
    done
    rm -f "$out/j"
    "$W" run --journal "$out/j" "$G/snapbench.wasm" durable 256 | field snapshot_ns >>"$out/durable"
    head -c $((256 << 20)) /dev/urandom >"$out/src.bin"
    rm -f "$out/dst.bin"
    s=$(date +%s%N); dd if="$out/src.bin" of="$out/dst.bin" bs=1M conv=fsync status=none; e=$(date +%s%N)
    echo $((e - s)) >>"$out/dd"
    rm -f "$out/j"
    "$W" run --journal "$out/j" "$G/snapbench.wasm" idle 8 | field pause_ns >>"$out/idle8"
    # An increment: 256 MiB, 1 % of its pages rewritten since a full snapshot (8 bytes of
    # each: `inc`, stored as xor deltas; or whole: `whole`, stored as pages); beside the
    # same second snapshot written whole (--full-snapshots). `quiet`: `inc` without the
    # computing thread (which takes one of a small machine's CPUs from the writer).
    for kind in inc quiet whole full; do
        rm -f "$out/j"
        flag=""; [ "$kind" = full ] && flag="--full-snapshots"
        mode=incremental; [ "$kind" = whole ] && mode=incremental-whole
        [ "$kind" = quiet ] && mode=incremental-durable
        WASMIX_LOG=wasmix_runtime::snapshot=debug,wasmix_runtime::host::journal=debug NO_COLOR=1 \
            "$W" run --journal "$out/j" $flag "$G/snapbench.wasm" $mode 256 10 >"$out/o" 2>"$out/e"
        grep '^snapshot_ns ' "$out/o" | tail -1 | awk '{print $2}' >>"$out/${kind}_durable"
        grep '^pause_ns ' "$out/o" | tail -1 | awk '{print $2}' >>"$out/${kind}_pause"
        sed -n 's/.*snapshot 2 (\([0-9]*\) bytes.*/\1/p' "$out/e" >>"$out/${kind}_bytes"
        # The stop of the second snapshot: held-for lines after its threads parked.
        awk '/threads parked/ {n++} n == 2' "$out/e" |
            sed -n 's/.*held for \([0-9]*\) µs.*/\1/p' | sort -n | tail -1 >>"$out/${kind}_stop"
    done
    rm -f "$out/jr"
    "$W" run --journal "$out/jr" --stop-after-snapshot "$G/snapbench.wasm" durable 64 >/dev/null 2>&1 || true
    s=$(date +%s%N)
    "$W" run --journal "$out/jr" "$G/snapbench.wasm" durable 64 | field resumed_wall_ns | awk -v s="$s" '{print $1 - s}' >>"$out/restore"
done
hyperfine --style none --warmup 2 --runs "$((REPS * 2))" -N --export-json "$out/compute.json" \
    "$W run $G/compute.wasm" "$W run --journal $out/cj $G/compute.wasm" \
    --prepare "rm -f $out/cj" >/dev/null 2>&1
# Compiled size of the compute guest, plain and instrumented for snapshots (own caches).
WASMIX_CACHE_DIR="$out/size-plain" "$W" run "$G/compute.wasm" >/dev/null
WASMIX_CACHE_DIR="$out/size-snap" "$W" run --journal "$out/sj" "$G/compute.wasm" >/dev/null
size_plain=$(stat -c %s "$out"/size-plain/*.cwasm)
size_snap=$(stat -c %s "$out"/size-snap/*.cwasm)
echo "$size_plain $size_snap" >"$out/sizes"

python3 - "$out" <<'PY'
import json, sys, statistics, glob, os
d = sys.argv[1]
def med(name):
    return statistics.median(float(x) for x in open(f"{d}/{name}") if x.strip())
c = [r["median"] for r in json.load(open(f"{d}/compute.json"))["results"]]
print("| measure | wasmix (median) | reference, same run | ratio |")
print("|---|---|---|---|")
print(f"| stop (longest a thread is held at the barrier), 64 MiB touched | {med('stop64')/1e3:.2f} ms | — | — |")
print(f"| stop, 256 MiB touched | {med('stop256')/1e3:.2f} ms | — | — |")
print(f"| longest a computing thread is held while the snapshot is taken and written, 64 MiB | {med('pause64')/1e6:.2f} ms | — | — |")
print(f"| the same, 256 MiB | {med('pause256')/1e6:.2f} ms | — | — |")
print(f"| durable, 256 MiB incompressible | {med('durable')/1e6:.0f} ms | dd conv=fsync {med('dd')/1e6:.0f} ms | {med('durable')/med('dd'):.2f}x |")
print(f"| restore, 64 MiB, launch → first instruction after the snapshot | {med('restore')/1e6:.1f} ms | — | — |")
print(f"| pause, 8 idle threads | {med('idle8')/1e6:.2f} ms | — | — |")
print(f"| incremental, 256 MiB with 1 % of pages changed (8 bytes each): durable (request → committed) | {med('inc_durable')/1e6:.1f} ms | the same snapshot written whole {med('full_durable')/1e6:.0f} ms | {med('full_durable')/med('inc_durable'):.0f}x faster |")
print(f"| the same, without the computing thread (as the full snapshot's durable) | {med('quiet_durable')/1e6:.1f} ms | — | — |")
print(f"| incremental, the same pages rewritten whole: durable | {med('whole_durable')/1e6:.1f} ms | — | — |")
print(f"| incremental: bytes written (8 bytes a page / whole pages) | {med('inc_bytes')/1e3:.0f} KB / {med('whole_bytes')/1e3:.0f} KB | whole snapshot {med('full_bytes')/1e6:.0f} MB | — |")
print(f"| incremental: stop (longest a thread is held at the barrier) | {med('inc_stop')/1e3:.2f} ms | whole {med('full_stop')/1e3:.2f} ms | — |")
print(f"| incremental: longest a computing thread is held (its own measure) | {med('inc_pause')/1e6:.2f} ms | whole {med('full_pause')/1e6:.2f} ms | — |")
print(f"| compute guest, instrumented for snapshots | {c[1]*1e3:.1f} ms | not instrumented {c[0]*1e3:.1f} ms | {c[1]/c[0]:.2f}x |")
plain, snap = (int(x) for x in open(f"{d}/sizes").read().split())
print(f"| compute guest, compiled size | {snap} bytes | not instrumented {plain} bytes | {snap/plain:.2f}x |")
PY
# CRIU on the native equivalent, in the same run (root only: CRIU needs it).
if [ "$(id -u)" -eq 0 ]; then
    REPS="$REPS" bench/criu.sh | grep -v '^[a-z_0-9]* [0-9]'
else
    echo "criu: needs root; run bench/criu.sh as root for the CRIU side"
fi

#!/usr/bin/env bash
# CRIU on the native equivalents of bench/snapshot.sh's snapshots, for the side-by-side
# tables in docs/BENCHMARKS.md: a process with 256 MiB of incompressible bytes and a
# computing thread (bench/native_snap.c, the same fill and writes as
# `snapbench incremental 256 10`).
#
# Per round: a full `criu dump --leave-running` of the 256 MiB process, timed until CRIU
# returns and until its images are fsync'd (durable, as wasmix's journal is), with the
# computing thread's longest hold-up (what the process saw of the freeze); then the dump and
# restore (`criu restore -d`, until the process runs again) of a 64 MiB one. Incremental
# dumps need the kernel's soft-dirty bits: where they are missing the script says so.
# REPS rounds (default 5); medians. Needs root (CRIU); scripts/criu-env.sh provides CRIU 4.2
# in a Debian sid tree (Debian 12's CRIU 3.17 does not run on 6.x kernels).
set -euo pipefail
cd "$(dirname "$0")/.."
R="${WASMIX_CRIU_ROOT:-/var/lib/wasmix-criu}"
scripts/criu-env.sh setup
W=/var/tmp/wasmix-criu-bench   # inside the tree; on disk, like the journal in snapshot.sh
rm -rf "$R$W" && mkdir -p "$R$W"
gcc -O2 -pthread -o "$R$W/native_snap" bench/native_snap.c
cat >"$R$W/inner.sh" <<'INNER'
#!/bin/sh
set -eu
W=/var/tmp/wasmix-criu-bench
REPS="$1"
# A failed round must not leave a computing process behind to skew what runs next.
trap 'for f in "$W"/*/pid; do kill -9 "$(cat "$f" 2>/dev/null)" 2>/dev/null || true; done' EXIT
ns() { date +%s%N; }
wait_for() { while [ ! -e "$1" ]; do sleep 0.01; done; }
start() { # MIB DIR: start the native process, wait until its memory is filled
    rm -rf "$2" && mkdir -p "$2"
    : >"$2/in"; setsid "$W/native_snap" "$1" 10 "$2" <"$2/in" >"$2/out" 2>&1 &
    echo $! >"$2/pid"
    wait_for "$2/filled"
}
gap() { # DIR: the computing thread's longest hold-up since the last call, in ns
    rm -f "$1/gap"; kill -USR2 "$(cat "$1/pid")"; wait_for "$1/gap"; cat "$1/gap"
}
timed() { # NAME DIR IMAGES CMD...: time CMD, then until IMAGES are fsync'd
    name="$1"; d="$2"; img="$3"; shift 3
    mkdir -p "$img"; s=$(ns); "$@" >"$d/$name.log" 2>&1 || { echo "criu failed: $name" >&2; tail -5 "$d/$name.log" >&2; exit 1; }
    m=$(ns); sync "$img"/*; e=$(ns)
    echo "$name $((m - s)) $((e - s)) $(du -sb "$img" | cut -f1)"
}
for r in $(seq "$REPS"); do
    d=$W/r; start 256 "$d"; pid=$(cat "$d/pid")
    gap "$d" >/dev/null
    timed dump_full "$d" "$d/full" criu dump -t "$pid" -D "$d/full" --leave-running
    echo "dump_full_gap $(gap "$d")"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    # Restore of a 64 MiB process: launch of `criu restore -d` until it returns with the
    # process running again.
    d=$W/s; start 64 "$d"; pid=$(cat "$d/pid")
    mkdir -p "$d/img"; criu dump -t "$pid" -D "$d/img" >"$d/dump.log" 2>&1
    wait "$pid" 2>/dev/null || true
    s=$(ns); criu restore -d -D "$d/img" >"$d/restore.log" 2>&1; e=$(ns)
    echo "restore64 $((e - s))"
    kill -TERM "$pid" 2>/dev/null || true
done
INNER
chmod +x "$R$W/inner.sh"
REPS="${REPS:-5}"
scripts/criu-env.sh run "$W/inner.sh" "$REPS" | tee "$R$W/results"
# CRIU's incremental pre-dump (`pre-dump --track-mem`) needs the kernel's soft-dirty bits.
if ! scripts/criu-env.sh run criu check --feature mem_dirty_track >/dev/null 2>&1; then
    echo "criu: no memory tracking on this kernel (CONFIG_MEM_SOFT_DIRTY unset): incremental"
    echo "      pre-dumps and dumps cannot run (pre-dump aborts, a dump on a parent is refused)"
fi
python3 - "$R$W/results" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    k, *v = line.split()
    rows.setdefault(k, []).append([float(x) for x in v])
def med(k, i=0):
    return statistics.median(r[i] for r in rows[k])
print("| CRIU 4.2.1, native process, 256 MiB + a computing thread | returns | durable (images fsync'd) | process held | image bytes |")
print("|---|---|---|---|---|")
for k, label in [("dump_full", "full dump (`dump --leave-running`)")]:
    print(f"| {label} | {med(k)/1e6:.1f} ms | {med(k,1)/1e6:.1f} ms | {med(k+'_gap')/1e6:.2f} ms | {med(k,2)/1e6:.1f} MB |")
print(f"| restore of a 64 MiB process (`restore -d`) | {med('restore64')/1e6:.1f} ms | — | — | — |")
PY

#!/usr/bin/env bash
# CPU backoff for idle pollers: busypoll.wasm polls stdin with a zero timeout (`poll`) or
# non-blocking reads (`read`) until a line comes. Each run idles IDLE seconds (default 3),
# then a line is written; measured: the CPU time the runtime used (user + sys) over the
# run, and the latency from writing the line to the guest's answer. With the backoff (the
# default) and without (--no-cpu-backoff), side by side in one run; REPS each (default 5),
# medians.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
guests/build.sh
W="$PWD/target/release/wasmix" G="$PWD/guests/out/busypoll.wasm" REPS="${REPS:-5}" IDLE="${IDLE:-3}" \
python3 - <<'PY'
import os, statistics, subprocess, time, resource
W, G, reps, idle = os.environ["W"], os.environ["G"], int(os.environ["REPS"]), float(os.environ["IDLE"])
def once(mode, flags):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.Popen([W, "run", *flags, G, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"polling\n"
    time.sleep(idle)  # the idle stretch being measured, not a synchronisation
    t0 = time.monotonic()
    p.stdin.write(b"hello\n"); p.stdin.flush()
    answer = p.stdout.readline()
    latency = time.monotonic() - t0
    p.wait()
    assert answer.startswith(b"got hello"), answer
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, latency
print(f"| guest | CPU over a {idle:.0f} s idle run, backoff | without | latency to the first event, backoff | without |")
print("|---|---|---|---|---|")
for mode in ["poll", "read"]:
    res = {k: [once(mode, f) for _ in range(reps)] for k, f in [("on", []), ("off", ["--no-cpu-backoff"])]}
    med = lambda k, i: statistics.median(r[i] for r in res[k])
    print(f"| busypoll {mode} | {med('on',0)*1e3:.0f} ms | {med('off',0)*1e3:.0f} ms | {med('on',1)*1e3:.2f} ms | {med('off',1)*1e3:.2f} ms |")
PY

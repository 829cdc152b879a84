#!/usr/bin/env bash
# The kill table: time from SIGTERM to the runtime (which hands it to the guest: default
# action, terminate) to the wasmix process gone, for a guest thread in each blocking state.
# Each scenario starts the guest, waits until it says it is in that state (or, for a plain
# sleep, 300 ms), sends SIGTERM and times until the process has exited. REPS runs each
# (default 5); medians. Beside it, the same for a native process (`sleep 1000`) killed the
# same way, as the floor of what "gone" costs here.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
guests/build.sh
W="$PWD/target/release/wasmix" G="$PWD/guests/out" REPS="${REPS:-5}" python3 - <<'PY'
import os, signal, socket, statistics, subprocess, tempfile, time
W, G, reps = os.environ["W"], os.environ["G"], int(os.environ["REPS"])
tmp = tempfile.mkdtemp()
os.mkfifo(os.path.join(tmp, "fifo"))
scenarios = [
    ("compute loop", [W, "run", f"{G}/limits.wasm", "spin"], "spinning"),
    ("raw atomic wait (4 threads in std's Condvar)", [W, "run", f"{G}/threads.wasm", "parked"], "parked"),
    ("read of an empty stdin pipe", [W, "run", f"{G}/cat.wasm"], None),
    ("open of a FIFO nobody reads", [W, "run", "--dir", tmp, f"{G}/fifo_writer.wat"], "opening"),
    ("accept on a listening socket", [W, "run", "--tcplisten", "127.0.0.1:0", f"{G}/sock_echo.wasm", "announce"], "accepting"),
    ("sleep (thread_sleep / poll_oneoff on a clock)", [W, "run", f"{G}/child.wasm", "sleep", "1000000"], None),
    ("root in proc_join, 1000 forked children computing", [W, "run", f"{G}/forker.wasm", "tree", "1000"], "tree ready"),
    ("native process, for reference (sleep 1000)", ["sleep", "1000"], None),
]
print("| guest thread's state | SIGTERM → process gone (median) |")
print("|---|---|")
for name, cmd, ready in scenarios:
    times = []
    for _ in range(reps):
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if ready:
            line = p.stdout.readline().decode()
            assert line.strip() == ready, (name, line)
        else:
            time.sleep(0.3)  # a settling time before the signal, not a synchronisation
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        p.wait()
        times.append(time.monotonic() - t0)
        p.stdin.close(); p.stdout.close()
    print(f"| {name} | {statistics.median(times)*1e3:.2f} ms |")
PY

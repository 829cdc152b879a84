#!/usr/bin/env bash
# The kill table: for a guest thread in each blocking state, the time from a signal to the
# process gone. Host-sent: SIGTERM (the runtime hands it to the guest: default action,
# terminate) or SIGKILL to the wasmix process, until it has exited. Guest-sent: a guest
# (`killer`) spawns the program in that state, sends SIGTERM or SIGKILL with proc_signal and
# times until its join returns. Each scenario waits until the guest says it is in that state
# (or, for a plain sleep or read, 300 ms). REPS runs each (default 5); medians. Beside it, a
# native process (`sleep 1000`) killed the same way, as the floor of what "gone" costs here.
# ONLY=TEXT runs just the scenarios whose name contains TEXT (e.g. ONLY=tree).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
guests/build.sh
BENCH="$PWD/bench" W="$PWD/target/release/wasmix" G="$PWD/guests/out" REPS="${REPS:-5}" ONLY="${ONLY:-}" python3 - <<'PY'
import os, re, signal, statistics, subprocess, sys, tempfile, time
sys.path.insert(0, os.environ["BENCH"])
from harness_priority import prioritize
W, G, reps = os.environ["W"], os.environ["G"], int(os.environ["REPS"])

print(f"(this harness runs with {prioritize()})", file=sys.stderr)
tmp = tempfile.mkdtemp()
os.mkfifo(os.path.join(tmp, "fifo"))
# (state, guest args after the module, ready line or None, host-only)
L, B, T = f"{G}/limits.wasm", f"{G}/bench.wasm", f"{G}/threads.wasm"
scenarios = [
    ("compute loop", ["limits", "spin"], "spinning"),
    ("WASIX futex_wait", ["bench", "futex-parked"], "parked"),
    ("raw atomic wait (4 threads in std's Condvar)", ["threads", "parked"], "parked"),
    ("read of an empty stdin pipe", ["cat"], None),
    ("open of a FIFO nobody reads", ["fifo_writer.wat"], "opening"),
    ("accept on a listening socket", ["sock_echo", "announce"], "accepting"),
    ("sleep (thread_sleep / poll_oneoff on a clock)", ["child", "sleep", "1000000"], None),
    ("proc_join of a sleeping child", ["limits", "join-sleeper"], "joining"),
    ("inside a signal handler (computing)", ["limits", "handler-spin"], "in handler"),
    ("1,024-process tree (root in proc_join, 1,023 children computing)", ["forker", "tree", "1023"], "tree ready"),
]
mounts = ["--dir", f"{tmp}::/", "--dir", f"{G}::/bin"]

def module(name):
    return f"{G}/{name}" if "." in name else f"{G}/{name}.wasm"

def host_kill(cmd, ready, sig):
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if ready:
        line = p.stdout.readline().decode()
        assert line.strip() == ready, (cmd, line)
    else:
        time.sleep(0.3)  # a settling time before the signal, not a synchronisation
    t0 = time.monotonic()
    p.send_signal(sig)
    p.wait()
    dt = time.monotonic() - t0
    p.stdin.close(); p.stdout.close()
    return dt * 1e3

def guest_kill(args, ready, sig):
    # killer (a guest) spawns the state's program, sends the signal with proc_signal and
    # times until its join returns.
    cmd = [W, "run", *mounts, f"{G}/killer.wasm", str(sig), ready or "-", *args]
    out = subprocess.run(cmd, capture_output=True, timeout=60).stdout.decode()
    m = re.search(r"gone in ([0-9.]+) ms", out)
    assert m, (cmd, out)
    return float(m.group(1))

def med(f):
    return f"{statistics.median(f() for _ in range(reps)):.2f} ms"

print("| guest thread's state | host SIGTERM | host SIGKILL | guest-sent SIGTERM | guest-sent SIGKILL |")
print("|---|---|---|---|---|")
only = os.environ.get("ONLY", "")
for name, args, ready in scenarios:
    if only not in name:
        continue
    extra = ["--tcplisten", "127.0.0.1:0"] if args[0] == "sock_echo" else []
    cmd = [W, "run", *extra, *mounts, module(args[0]), *args[1:]]
    cols = [med(lambda: host_kill(cmd, ready, s)) for s in (signal.SIGTERM, signal.SIGKILL)]
    if args[0] in ("sock_echo", "forker"):
        # A child cannot be handed a listener; a guest's kill of a tree's root leaves its
        # children (as on Linux), so neither has a guest-sent row.
        cols += ["n/a", "n/a"]
    else:
        cols += [med(lambda: guest_kill(args, ready, s)) for s in (15, 9)]
    print(f"| {name} | " + " | ".join(cols) + " |")
if only in "native process":
    native = ["sleep", "1000"]
    cols = [med(lambda: host_kill(native, None, s)) for s in (signal.SIGTERM, signal.SIGKILL)]
    print("| native process, for reference (sleep 1000) | " + " | ".join(cols) + " | | |")
PY

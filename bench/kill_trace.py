#!/usr/bin/env python3
# The tree kill, traced by the kernel: builds a tree of N computing children (forker.wasm
# tree N, default 1,023: 1,024 processes), sends SIGTERM (or SIGKILL: second argument
# `kill`) and reads ftrace's events (signal generation, deliveries, thread exits, and the
# scheduling of wasmix's main and forwarding threads) to say where the time between the
# kill(2) and the last thread's exit went — including what a starved measuring harness
# would add. Needs root (tracefs), a release build and guests/build.sh. One run per call:
#   sudo python3 bench/kill_trace.py 1023 term
# and, for an unprivileged wasmix (and harness):
#   setpriv --inh-caps=-sys_nice --bounding-set=-sys_nice -- python3 bench/kill_trace.py
import os, sys, time, signal, subprocess, threading, collections
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness_priority import prioritize
print("harness:", prioritize())
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W = f"{ROOT}/target/release/wasmix"; G = f"{ROOT}/guests/out"
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1023
sig = signal.SIGTERM if (len(sys.argv) < 3 or sys.argv[2] == "term") else signal.SIGKILL
T = "/sys/kernel/tracing"
if not os.path.exists(f"{T}/trace"):
    subprocess.run(["mount", "-t", "tracefs", "nodev", T], check=True)
def w(path, v):
    with open(f"{T}/{path}", "w") as f: f.write(v)
w("tracing_on", "0"); w("trace", ""); w("trace_clock", "mono"); w("buffer_size_kb", "65536")
for e in ["sched/sched_process_exit", "syscalls/sys_enter_exit_group", "signal/signal_deliver"]:
    w(f"events/{e}/enable", "1")
t_start = time.monotonic()
p = subprocess.Popen([W, "run", f"{G}/forker.wasm", "tree", str(n)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
line = p.stdout.readline().decode().strip()
assert line == "tree ready", line
built = time.monotonic() - t_start
tids = os.listdir(f"/proc/{p.pid}/task")
ps = subprocess.run(["ps", "-L", "-o", "tid,cls,rtprio,stat,wchan:32,comm", "-p", str(p.pid)], capture_output=True, text=True).stdout.splitlines()
special = [l for l in ps[1:] if l.split()[1] != "TS"]
print("non-TS threads:", *special, sep="\n  ")
ff = [l.split()[0] for l in ps[1:] if l.split()[0] == str(p.pid) or "unix_stream" in l]
main_line = [l for l in ps[1:] if l.split()[0] == str(p.pid)]
print("main:", main_line)
filt = " || ".join(f"pid == {t}" for t in ff) or "pid == 0"
w("events/sched/sched_wakeup/filter", filt); w("events/sched/sched_wakeup/enable", "1")
w("events/sched/sched_switch/filter", " || ".join(f"next_pid == {t} || prev_pid == {t}" for t in ff) or "next_pid == 0"); w("events/sched/sched_switch/enable", "1")
w("events/signal/signal_generate/filter", "sig == 15"); w("events/signal/signal_generate/enable", "1")
samples = []
stop = False
def sampler():
    while not stop:
        c = collections.Counter(); wch = collections.Counter()
        try:
            for t in os.listdir(f"/proc/{p.pid}/task"):
                try:
                    st = open(f"/proc/{p.pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()[0]
                    c[st] += 1
                    if st == "D":
                        wch[open(f"/proc/{p.pid}/task/{t}/wchan").read()] += 1
                except OSError: pass
        except OSError: break
        samples.append((time.monotonic(), dict(c), dict(wch)))
        time.sleep(0.05)
w("tracing_on", "1")
t0 = time.monotonic()
p.send_signal(sig)
th = threading.Thread(target=sampler); th.start()
p.wait()
t1 = time.monotonic()
stop = True; th.join()
w("tracing_on", "0")
tr = open(f"{T}/trace").read().splitlines()
for e in ["sched/sched_process_exit", "syscalls/sys_enter_exit_group", "signal/signal_deliver", "sched/sched_wakeup", "sched/sched_switch", "signal/signal_generate"]:
    w(f"events/{e}/enable", "0")
for l in tr:
    if any(k in l for k in ("sched_wakeup", "sched_switch", "signal_generate")) or ("signal_deliver" in l and "sig=15" in l):
        print("   ", l.strip()[:220])
tidset = set(tids)
exits = []; eg = None; delivers = []
for l in tr:
    if l.startswith("#"): continue
    parts = l.split()
    try:
        ts = float([x for x in parts if x.endswith(":") and x[:-1].replace(".", "").isdigit()][0][:-1])
    except IndexError: continue
    if "sched_process_exit" in l:
        pid = l.split("pid=")[1].split()[0]
        if pid in tidset: exits.append(ts)
    elif "sys_exit_group" in l and eg is None:
        task = parts[0].rsplit("-", 1)[1]
        if task in tidset: eg = ts
    elif "signal_deliver" in l:
        task = parts[0].rsplit("-", 1)[1]
        if task in tidset: delivers.append(ts)
exits.sort()
gen = [float([x for x in l.split() if x.endswith(":") and x[:-1].replace(".", "").isdigit()][0][:-1]) for l in tr if "signal_generate" in l and "sig=15" in l and f"pid={p.pid}" in l]
if gen and exits:
    print(f"KERNEL: kill(2) -> last thread exit {(exits[-1] - gen[0]) * 1e3:.1f} ms; kill(2) -> exit_group {((eg or gen[0]) - gen[0]) * 1e3:.1f} ms; harness t0 -> kill(2) {(gen[0] - t0) * 1e3:.1f} ms")
ms = lambda x: f"{(x - t0) * 1e3:.1f}"
print(f"n={n} sig={sig.name} built in {built:.1f}s threads={len(tids)} gone after {(t1 - t0) * 1e3:.1f} ms")
print(f"  exit_group at +{ms(eg) if eg else '?'} ms; deliveries {len(delivers)} first +{ms(delivers[0]) if delivers else '?'}")
if exits:
    q = lambda f: ms(exits[min(len(exits) - 1, int(f * len(exits)))])
    print(f"  thread exits {len(exits)}: first +{ms(exits[0])} 10% +{q(0.1)} 50% +{q(0.5)} 90% +{q(0.9)} last +{ms(exits[-1])}")
    gaps = sorted(((b - a, a) for a, b in zip(exits, exits[1:])), reverse=True)[:3]
    print("  largest gaps between exits:", ", ".join(f"{g * 1e3:.1f} ms at +{ms(a)}" for g, a in gaps))
for ts, c, wch in samples[::max(1, len(samples) // 12)]:
    print(f"  +{ms(ts)}: {c} {wch}")

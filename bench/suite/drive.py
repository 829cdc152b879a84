#!/usr/bin/env python3
"""Times the suite's programs as whole processes, in alternating rounds, and prints a table.

Each round runs every program once under each runner — wasmtime, wasmix, wasmix on the
program's signal-handler variant, wasmix under a journal — rotating which goes first, so a
busy moment of the (shared) machine falls on all of them alike. Medians per runner; ratios
are wasmix's median over wasmtime's. Every run's output must be the checksum line wasmtime
printed, or the suite stops.
"""
import argparse
import math
import os
import statistics
import subprocess
import sys
import time

# (program, scale): tens of milliseconds at scale 1; the long ones run 0.3 s or more.
SHORT = [("deflate", 1), ("hash", 1), ("sign", 1), ("json", 1), ("markdown", 1),
         ("regex", 1), ("interp", 1), ("nbody", 1), ("bytes", 1)]
LONG = [("deflate", 15), ("hash", 18), ("sign", 12), ("json", 8), ("markdown", 40),
        ("regex", 25), ("db", 5), ("interp", 40), ("nbody", 40), ("loops", 5), ("vm", 6),
        ("kv", 4), ("sort", 2), ("bytes", 10)]
RUNNERS = ["wasmtime", "wasmix", "signal", "journal"]


def command(runner, args, name, scale):
    p = os.path.join(args.programs, name)
    if runner == "wasmtime":
        return [args.wasmtime, "run", p + ".wasm", str(scale)]
    if runner == "wasmix":
        return [args.wasmix, "run", p + ".wasm", str(scale)]
    if runner == "signal":
        return [args.wasmix, "run", p + "-signal.wasm", str(scale)]
    journal = os.path.join(args.scratch, "suite.journal")
    if os.path.exists(journal):
        os.remove(journal)
    return [args.wasmix, "run", "--journal", journal, p + ".wasm", str(scale)]


def timed(cmd):
    start = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    took = time.perf_counter() - start
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.decode(errors='replace')}")
    return took, r.stdout


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    for a in ["wasmix", "wasmtime", "programs", "scratch"]:
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    only = set(args.only.split())
    cases = [(n, s, "short") for n, s in SHORT] + [(n, s, "long") for n, s in LONG]
    cases = [c for c in cases if not only or c[0] in only]
    cases.append(("compute", None, "guest"))

    def cmd(runner, name, scale):
        c = command(runner, args, name, scale)
        return c if scale is not None else c[:-1]

    # Warm-up: fills both compiled-module caches and records the expected output.
    expected = {}
    for name, scale, _ in cases:
        _, want = timed(cmd("wasmtime", name, scale))
        expected[(name, scale)] = want
        runners = ["wasmix"] if name == "compute" else RUNNERS[1:]
        for runner in runners:
            _, got = timed(cmd(runner, name, scale))
            if got != want:
                sys.exit(f"{name} {scale} under {runner}: printed {got!r}, wasmtime {want!r}")
    times = {(n, s): {r: [] for r in RUNNERS} for n, s, _ in cases}
    for round_ in range(args.rounds):
        for name, scale, _ in cases:
            runners = ["wasmtime", "wasmix"] if name == "compute" else RUNNERS
            k = round_ % len(runners)
            for runner in runners[k:] + runners[:k]:
                took, got = timed(cmd(runner, name, scale))
                if got != expected[(name, scale)]:
                    sys.exit(f"{name} {scale} under {runner} printed {got!r}")
                times[(name, scale)][runner].append(took)
        print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr)

    med = {k: {r: statistics.median(v) for r, v in rs.items() if v} for k, rs in times.items()}
    print(f"Medians of {args.rounds} alternating rounds, whole-process wall time.\n")
    print("| program | kind | wasmtime | wasmix | ratio | signal variant | ratio | journal | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    ratios = {r: {"short": [], "long": []} for r in RUNNERS[1:]}
    for name, scale, kind in cases:
        m = med[(name, scale)]
        base = m["wasmtime"]
        row = f"| {name} {scale or ''} | {kind} | {base * 1e3:.1f} ms"
        for runner in RUNNERS[1:]:
            if runner in m:
                ratio = m[runner] / base
                row += f" | {m[runner] * 1e3:.1f} ms | {ratio:.3f}"
                if kind != "guest":
                    ratios[runner][kind].append(ratio)
            else:
                row += " | — | —"
        print(row + " |")
    print()
    print("| runner | geomean, all | geomean, short | geomean, long | highest |")
    print("|---|---|---|---|---|")
    for runner in RUNNERS[1:]:
        s, lg = ratios[runner]["short"], ratios[runner]["long"]
        print(f"| {runner} / wasmtime | {geomean(s + lg):.3f} | {geomean(s):.3f} | "
              f"{geomean(lg):.3f} | {max(s + lg):.3f} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# The floor of an incremental snapshot on this machine (bench/incr_floor.c): 256 MiB with
# 1 % of its pages rewritten, found, protected again and copied three ways — today's
# sync-mode re-protection, and async mode with PAGEMAP_SCAN in one stop or two — each
# followed by the journal's write and two fdatasyncs, beside a computing thread. The three
# alternate, ROUNDS processes of INCREMENTS increments each (defaults 5 and 8); medians
# and quartiles. Needs Linux 6.7+ (PAGEMAP_SCAN) and the right to use userfaultfd (root, or
# vm.unprivileged_userfaultfd = 1). Plain C with no runtime around it: what wasmix's own
# increment (bench/snapshot.sh) could reach by each design, not a measure of wasmix.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-5}"
INCREMENTS="${INCREMENTS:-8}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
gcc -O2 -Wall -pthread -o "$out/incr_floor" bench/incr_floor.c
# The journal file goes where bench/snapshot.sh puts its journals.
for _ in $(seq "$ROUNDS"); do
    for mode in sync async1 async2; do
        "$out/incr_floor" "$mode" "$INCREMENTS" "$out/journal" >>"$out/lines"
    done
done
python3 - "$out/lines" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    rows.setdefault(f[0], []).append({f[i]: int(f[i + 1]) for i in range(1, len(f), 2)})
def q(vals):
    vals = sorted(vals)
    qs = statistics.quantiles(vals, n=4)
    return f"{statistics.median(vals) / 1000:.2f} ms ({qs[0] / 1000:.2f}–{qs[2] / 1000:.2f})"
print("| design | durable (request → 2nd fdatasync) | longest stop | computing thread's longest gap | n |")
print("|---|---|---|---|---|")
for mode in ("sync", "async1", "async2"):
    r = rows[mode]
    print(f"| {mode} | {q([x['durable_us'] for x in r])} | {q([x['stop_us'] for x in r])} | "
          f"{q([x['gap_us'] for x in r])} | {len(r)} |")
PY

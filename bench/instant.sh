#!/usr/bin/env bash
# Instant start: a guest that takes about a second to build its tables before it serves
# stdin (guests/rust/src/bin/warmup.rs), started cold beside restored from a snapshot taken
# at the end of its start-up, its first read of stdin (`--snapshot-on bootstrap`), side by
# side in one run.
# REPS runs each (default 10); medians and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
guests/build.sh
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
W="$PWD/target/release/wasmix"
G="$PWD/guests/out/warmup.wasm"
export WASMIX_CACHE_DIR="$out/cache"
REPS="${REPS:-10}"
echo 12345 >"$out/in"
# Warm the module cache for both instrumentations, then take the snapshot.
"$W" run "$G" <"$out/in" >/dev/null
"$W" run --journal "$out/j" --snapshot-on bootstrap --stop-after-snapshot "$G" </dev/null \
    >/dev/null 2>&1 || true
cold=$("$W" run "$G" <"$out/in")
warm=$("$W" run --journal "$out/j" "$G" <"$out/in")
[ "$cold" = "$warm" ] || { echo "a restore answered differently: $warm vs $cold" >&2; exit 1; }
hyperfine --style none --warmup 2 --runs "$REPS" --export-json "$out/r.json" \
    "$W run $G < $out/in" "$W run --journal $out/j $G < $out/in" >/dev/null
python3 - "$out/r.json" "$(stat -c %s "$out/j")" <<'PY'
import json, sys
r = [x["median"] for x in json.load(open(sys.argv[1]))["results"]]
print("| measure | median | ratio |")
print("|---|---|---|")
print(f"| cold start to the first answer | {r[0]*1e3:.1f} ms | — |")
print(f"| restore from the bootstrap snapshot to the first answer | {r[1]*1e3:.2f} ms | {r[0]/r[1]:.0f}x faster |")
print(f"| journal size | {int(sys.argv[2])/2**20:.1f} MiB | — |")
PY
# Four restores of the one journal at once (`--restore-from`, each recording into a journal
# of its own), each having read across its whole table: what each maps of the journal stays
# the page cache's, shared, so PSS is about a quarter of RSS.
python3 - "$W" "$G" "$out" <<'PY'
import os, subprocess, sys
w, g, out = sys.argv[1:]
n, queries, entries = 4, 8192, 8 << 20
runs = [subprocess.Popen([w, "run", "--journal", f"{out}/own{i}", "--restore-from", f"{out}/j", g],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for i in range(n)]
for p in runs:
    p.stdin.write("".join(f"{q * (entries // queries)}\n" for q in range(queries)))
    p.stdin.flush()
for p in runs:
    for _ in range(queries):
        assert p.stdout.readline(), "a restore ended early"
def rollup(pid):
    fields = (line.split() for line in open(f"/proc/{pid}/smaps_rollup"))
    return {f[0].rstrip(":"): int(f[1]) for f in fields if len(f) == 3 and f[2] == "kB"}
seen = [rollup(p.pid) for p in runs]
for p in runs:
    p.stdin.close()
    p.wait()
rss = sorted(s["Rss"] for s in seen)[n // 2] / 1024
pss = sorted(s["Pss"] for s in seen)[n // 2] / 1024
print(f"| {n} restores at once, each after {queries} queries across its table: RSS / PSS each | {rss:.1f} / {pss:.1f} MiB | PSS {pss / rss:.2f} of RSS |")
PY

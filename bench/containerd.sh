#!/usr/bin/env bash
# wasmix under containerd, side by side in one run with the same program as a native static
# binary under runc (io.containerd.runc.v2): the time from `ctr run` to the first line of
# output (hello world, REPS rounds, alternating, medians), and N containers started back to
# back (`ctr run --rm`, one after the other): total time, and the peak resident memory
# containerd reports for each shim. Needs root. Private containerd as in
# scripts/containerd-test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
REPS="${REPS:-11}"
N="${N:-100}"
scripts/setup.sh >/dev/null
guests/build.sh
cargo build --quiet --release -p containerd-shim-wasmix
shim="$root/target/release/containerd-shim-wasmix-v1"

work="$(mktemp -d /tmp/wasmix-ctd-bench.XXXXXX)"
ctd_pid=""
cleanup() {
    [ -n "$ctd_pid" ] && kill "$ctd_pid" 2>/dev/null && wait "$ctd_pid" 2>/dev/null
    umount -R "$work/root" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/bin"
ln -s "$shim" "$work/bin/containerd-shim-wasmix-v1"
cat >"$work/config.toml" <<EOF
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd.sock"
[ttrpc]
  address = "$work/containerd.sock.ttrpc"
EOF
PATH="$work/bin:$PATH" containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
ctd_pid=$!
ctr_() { ctr --address "$work/containerd.sock" "$@"; }
for _ in $(seq 100); do ctr_ version >/dev/null 2>&1 && break; sleep 0.1; done

gcc -O2 -static -o "$work/hello-native" bench/native_hello.c
python3 scripts/oci_image.py hello-wasm:bench "$work/wasm.tar" --entrypoint /hello.wasm \
    --file "guests/out/hello.wasm:/hello.wasm"
python3 scripts/oci_image.py hello-native:bench "$work/native.tar" --entrypoint /hello \
    --file "$work/hello-native:/hello"
ctr_ image import "$work/wasm.tar" >/dev/null
ctr_ image import "$work/native.tar" >/dev/null
wasm=(--runtime io.containerd.wasmix.v1 docker.io/library/hello-wasm:bench)
native=(--runtime io.containerd.runc.v2 docker.io/library/hello-native:bench)

med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms() { awk '{printf "%.1f", $1 / 1e6}'; }

# From `ctr run` to the first line of output.
first_line() { # name, run args...
    local id="$1"
    shift
    local s e
    s=$(date +%s%N)
    ctr_ run --rm "$@" "$id" | head -1 >/dev/null
    e=$(date +%s%N)
    echo $((e - s))
}
# Warm both (image unpacked, page cache).
first_line warm-w "${wasm[@]}" >/dev/null
first_line warm-n "${native[@]}" >/dev/null
for r in $(seq "$REPS"); do
    first_line "w$r" "${wasm[@]}" >>"$work/first_wasm"
    first_line "n$r" "${native[@]}" >>"$work/first_native"
done

# N containers back to back.
back_to_back() { # prefix, run args...
    local prefix="$1"
    shift
    local s e
    s=$(date +%s%N)
    for i in $(seq "$N"); do
        ctr_ run --rm "$@" "$prefix$i" >/dev/null
    done
    e=$(date +%s%N)
    echo $((e - s))
}
: >"$work/containerd.log.mark"
log_lines_before=$(wc -l <"$work/containerd.log")
total_wasm=$(back_to_back bw "${wasm[@]}")
# The shim reports its own peak at exit (runwasi); runc's shim does not, so only ours.
peaks=$(tail -n +"$log_lines_before" "$work/containerd.log" |
    sed -n 's/.*Shim peak memory usage was: peak resident set \([0-9]*\) kB.*/\1/p')
total_native=$(back_to_back bn "${native[@]}")

fw=$(med <"$work/first_wasm")
fn=$(med <"$work/first_native")
echo "== wasmix under containerd vs runc, $(date -u +%Y-%m-%d), $(nproc) CPUs, REPS=$REPS, N=$N"
echo "first line of output (median of $REPS): wasmix shim $(echo "$fw" | ms) ms, native under runc $(echo "$fn" | ms) ms, ratio $(awk -v a="$fw" -v b="$fn" 'BEGIN {printf "%.2f", a / b}')"
echo "$N containers back to back: wasmix shim $(echo "$total_wasm" | ms) ms ($(awk -v t="$total_wasm" -v n="$N" 'BEGIN {printf "%.1f", t / n / 1e6}') ms each), native under runc $(echo "$total_native" | ms) ms ($(awk -v t="$total_native" -v n="$N" 'BEGIN {printf "%.1f", t / n / 1e6}') ms each)"
if [ -n "$peaks" ]; then
    echo "wasmix shim peak resident memory per container (containerd's log): median $(echo "$peaks" | med) kB, max $(echo "$peaks" | sort -n | tail -1) kB over $(echo "$peaks" | wc -l) shims"
fi

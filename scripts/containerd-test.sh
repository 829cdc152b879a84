#!/usr/bin/env bash
# wasmix under a real containerd: builds the shim, starts a private containerd (its own root,
# state and socket under a temp folder, the shim on its PATH), builds OCI images locally from
# test guests (scripts/oci_image.py; no registry), imports them with `ctr` and runs them with
# `--runtime io.containerd.wasmix.v1`: output (from an image whose rootfs holds the module, and
# from a Wasm OCI artifact), args/env/working directory, exit code, SIGTERM
# reaching the guest's handler and SIGKILL ending it, two containers at once, a mounted volume,
# a memory limit, WASIX children in a pipeline and threads, a native image beside them, and a
# snapshot on stop resumed by the next container (WASMIX_JOURNAL).
# Needs root (containerd does); scripts/setup.sh installs containerd and runc.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
if [ "$(id -u)" != 0 ]; then
    echo "containerd-test: needs root (containerd does); skipped" >&2
    exit 1
fi
profile="${PROFILE:-release}"
cargo build --quiet --profile "$profile" -p containerd-shim-wasmix
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
[ "$profile" = dev ] && subdir=debug || subdir="$profile"
shim="$target_dir/$subdir/containerd-shim-wasmix-v1"
[ -x "$shim" ] || { echo "no shim at $shim" >&2; exit 1; }

work="$(mktemp -d /tmp/wasmix-ctd.XXXXXX)"
ctd_pid=""
cleanup() {
    if [ -n "$ctd_pid" ]; then
        for id in $(ctr_ task ls -q 2>/dev/null); do ctr_ task kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
        sleep 0.5
        for id in $(ctr_ container ls -q 2>/dev/null); do
            ctr_ task delete -f "$id" >/dev/null 2>&1 || true
            ctr_ container delete "$id" >/dev/null 2>&1 || true
        done
        kill "$ctd_pid" 2>/dev/null || true
        wait "$ctd_pid" 2>/dev/null || true
    fi
    umount -R "$work/root" 2>/dev/null || true
    rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

mkdir -p "$work/bin" "$work/images" "$work/vol" "$work/state"
ln -s "$shim" "$work/bin/containerd-shim-wasmix-v1"
# containerd 1.6 unpacks every layer of an image into its rootfs and knows no Wasm layer: this
# stream processor makes one an empty tar (the shim reads the module from the content store).
# containerd 1.7 and later skip such layers themselves.
printf '#!/bin/sh\ncat >/dev/null\nexec tar cf - -T /dev/null\n' >"$work/bin/wasm-layer-processor"
chmod +x "$work/bin/wasm-layer-processor"
cat >"$work/config.toml" <<EOF
version = 2
root = "$work/root"
state = "$work/state/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd.sock"
[ttrpc]
  address = "$work/containerd.sock.ttrpc"
[stream_processors]
  [stream_processors."io.containerd.wasm.layer"]
    accepts = ["application/vnd.bytecodealliance.wasm.component.layer.v0+wasm"]
    returns = "application/vnd.oci.image.layer.v1.tar"
    path = "$work/bin/wasm-layer-processor"
EOF
PATH="$work/bin:$PATH" containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
ctd_pid=$!
ctr_() { ctr --address "$work/containerd.sock" "$@"; }
for _ in $(seq 100); do
    ctr_ version >/dev/null 2>&1 && break
    sleep 0.1
done
ctr_ version >/dev/null

fail() {
    echo "containerd-test: FAILED: $*" >&2
    echo "--- containerd log (tail)" >&2
    tail -20 "$work/containerd.log" >&2
    exit 1
}
check_eq() { # what, expected, got
    [ "$2" = "$3" ] || fail "$1: expected [$2], got [$3]"
    echo "ok: $1"
}

G="$root/guests/out"
image() { # name, then oci_image.py arguments
    local name="$1"
    shift
    python3 "$root/scripts/oci_image.py" "$name:test" "$work/images/$name.tar" "$@"
    ctr_ image import "$work/images/$name.tar" >/dev/null
}
image hello --entrypoint /hello.wasm --file "$G/hello.wasm:/hello.wasm"
image argsenv --entrypoint /app/args_env.wasm first --file "$G/args_env.wasm:/app/args_env.wasm" \
    --env GREETING=hi --workdir /app
image child --entrypoint /bin/child.wasm --file "$G/child.wasm:/bin/child.wasm"
image limits --entrypoint /limits.wasm --file "$G/limits.wasm:/limits.wasm"
image sh --entrypoint /bin/sh.wasm --file "$G/sh.wasm:/bin/sh.wasm" --file "$G/child.wasm:/bin/child.wasm"
# Snapshots need asyncify-instrumented modules, and a container has no wasm-opt to make
# them: they come instrumented, as WASIX toolchains build them.
wasm-opt -O2 --asyncify -g "$G/sh.wasm" -o "$work/sh.wasm"
wasm-opt -O2 --asyncify -g "$G/child.wasm" -o "$work/child.wasm"
image shsnap --entrypoint /bin/sh.wasm --file "$work/sh.wasm:/bin/sh.wasm" --file "$work/child.wasm:/bin/child.wasm"
image threads --entrypoint /threads.wasm basic --file "$G/threads.wasm:/threads.wasm"
image wat --entrypoint /tiny.wat --file "$G/tiny.wat:/tiny.wat"
W="--runtime io.containerd.wasmix.v1"
ref() { echo "docker.io/library/$1:test"; }

# Output.
out=$(ctr_ run --rm $W "$(ref hello)" t-hello)
check_eq "hello world" "hello from wasmix" "$out"

# A Wasm OCI artifact: the module is the image's layer, not a file in a rootfs.
python3 "$root/scripts/oci_image.py" artifact:test "$work/images/artifact.tar" \
    --entrypoint hello.wasm --wasm "$G/hello.wasm"
ctr_ image import --all-platforms "$work/images/artifact.tar" >/dev/null
out=$(ctr_ run --rm $W --platform wasip1/wasm "$(ref artifact)" t-artifact)
check_eq "a Wasm OCI artifact" "hello from wasmix" "$out"

# A .wat entrypoint.
ctr_ run --rm $W "$(ref wat)" t-wat >/dev/null || fail "a .wat entrypoint"
echo "ok: a .wat entrypoint"

# The spec's args, env and working directory; the exit code.
out=$(ctr_ run --rm $W --env EXIT_CODE=3 "$(ref argsenv)" t-args /app/args_env.wasm second 2>&1) && code=0 || code=$?
check_eq "exit code" 3 "$code"
echo "$out" | grep -qx "arg=second" || fail "args: $out"
echo "$out" | grep -qx "env=GREETING=hi" || fail "env: $out"
echo "ok: args and env"
ctr_ run --rm $W --cwd /data --mount "type=bind,src=$work/vol,dst=/data,options=rbind:rw" \
    "$(ref child)" t-cwd /bin/child.wasm write relative.txt "in the working directory" ||
    fail "a write relative to the working directory"
check_eq "working directory" "in the working directory" "$(cat "$work/vol/relative.txt")"

# SIGTERM reaches the guest's handler (it goes on); SIGKILL ends it.
ctr_ run --rm $W "$(ref limits)" t-kill /limits.wasm spin-catch >"$work/kill.out" 2>&1 &
runner=$!
for _ in $(seq 300); do grep -q spinning "$work/kill.out" && break; sleep 0.1; done
grep -q spinning "$work/kill.out" || fail "spin-catch never said spinning: $(cat "$work/kill.out")"
ctr_ task kill -s SIGTERM t-kill
for _ in $(seq 300); do grep -q "got signal 15" "$work/kill.out" && break; sleep 0.1; done
grep -q "got signal 15" "$work/kill.out" || fail "SIGTERM did not reach the handler: $(cat "$work/kill.out")"
echo "ok: SIGTERM reaches the guest's handler"
ctr_ task kill -s SIGKILL t-kill
wait "$runner" && code=0 || code=$?
check_eq "SIGKILL ends it" 137 "$code"

# Two containers at once, each a pipeline of WASIX children.
ctr_ run --rm $W "$(ref sh)" t-two-a /bin/sh.wasm "child produce 20000 | child sum" >"$work/a.out" 2>&1 &
a=$!
ctr_ run --rm $W "$(ref sh)" t-two-b /bin/sh.wasm "child produce 30000 | child sum" >"$work/b.out" 2>&1 &
b=$!
wait "$a" || fail "container a: $(cat "$work/a.out")"
wait "$b" || fail "container b: $(cat "$work/b.out")"
check_eq "two at once, first" "lines 20000 sum 200010000" "$(cat "$work/a.out")"
check_eq "two at once, second" "lines 30000 sum 450015000" "$(cat "$work/b.out")"

# Threads.
out=$(ctr_ run --rm $W "$(ref threads)" t-threads 2>&1) || fail "threads: $out"
echo "$out" | grep -qx "mutex sum 16000" || fail "threads: $out"
echo "ok: threads"

# A mounted volume: the guest writes a file the host reads.
ctr_ run --rm $W --mount "type=bind,src=$work/vol,dst=/data,options=rbind:rw" \
    "$(ref child)" t-vol /bin/child.wasm write /data/out.txt "written in a container" ||
    fail "volume write"
check_eq "mounted volume" "written in a container" "$(cat "$work/vol/out.txt")"

# The memory limit (64 MiB) bounds the guest's memory: its allocator is told no first.
out=$(ctr_ run --rm $W --memory-limit $((64 << 20)) "$(ref limits)" t-mem /limits.wasm alloc 2>&1) ||
    fail "memory limit: $out"
mib=$(echo "$out" | sed -n 's/^allocated \([0-9]*\) MiB$/\1/p')
[ -n "$mib" ] && [ "$mib" -ge 16 ] && [ "$mib" -lt 64 ] || fail "memory limit: $out"
echo "ok: memory limit (allocated $mib MiB of 64)"

# A native image beside them, through the same shim (runwasi runs it as a Linux container).
gcc -O2 -static -o "$work/hello-native" "$root/bench/native_hello.c"
image native --entrypoint /hello --file "$work/hello-native:/hello"
out=$(ctr_ run --rm $W "$(ref native)" t-native)
check_eq "a native container through the shim" "hello from wasmix" "$out"

# A snapshot on stop, resumed by the next container: SIGTERM snapshots a shell and its
# pipeline (waiting at a gate file) into a journal on a volume, then stops it; a new
# container with the same journal goes on from there — the same processes, the bytes in
# their pipe — and prints what an uninterrupted run prints.
mkdir -p "$work/vol/state"
pipeline="echo started; child produce 50000 | child sum /state/go"
J=(--env WASMIX_JOURNAL=/state/sh.journal --mount "type=bind,src=$work/vol/state,dst=/state,options=rbind:rw")
ctr_ run --rm $W "${J[@]}" "$(ref shsnap)" t-snap-1 /bin/sh.wasm "$pipeline" >"$work/snap.out" 2>&1 &
runner=$!
for _ in $(seq 600); do grep -q started "$work/snap.out" && break; sleep 0.1; done
grep -q started "$work/snap.out" || fail "the shell never said started: $(cat "$work/snap.out")"
ctr_ task kill -s SIGTERM t-snap-1
wait "$runner" && code=0 || code=$?
check_eq "stopped by SIGTERM after its snapshot" 143 "$code"
[ -s "$work/vol/state/sh.journal" ] || fail "no journal written"
touch "$work/vol/state/go"
out=$(ctr_ run --rm $W "${J[@]}" "$(ref shsnap)" t-snap-2 /bin/sh.wasm "$pipeline" 2>&1) || fail "resumed: $out"
[ "$out" = "lines 50000 sum 1250025000" ] ||
    fail "resumed from the snapshot: got [$out]; the stopped container said: $(cat "$work/snap.out")"
echo "ok: resumed from the snapshot"
echo "containerd-test: all passed"

#!/usr/bin/env bash
# Installs every tool the build, the guests, the tests and the benches need. Idempotent.
set -euo pipefail

need_apt=()
# containerd and runc run the shim's tests; protobuf-compiler and libseccomp-dev build the shim
# (runwasi's containerd client and youki's libcontainer).
for pkg in clang-16 lld-16 wasi-libc libclang-rt-16-dev-wasm32 libc++abi-16-dev-wasm32 binaryen hyperfine curl wrk \
    containerd runc protobuf-compiler libseccomp-dev gcc; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

installed_targets=$(rustup target list --installed)
for t in wasm32-wasip1 wasm32-wasip1-threads; do
    grep -qx "$t" <<<"$installed_targets" || rustup target add "$t"
done

#!/usr/bin/env bash
# CRIU for the snapshot benches. Debian 12's CRIU (3.17) cannot run on kernels that moved
# the vDSO (6.x: "vdso: Failed to fill self vdso symtable"), and newer CRIU needs a newer
# libc, so this builds a Debian sid tree with CRIU 4.2 from Debian's packages (once,
# idempotent) and runs a command inside it, as that tree's root in a private mount
# namespace (same pid namespace: CRIU sees and dumps processes started there).
#
#   scripts/criu-env.sh setup          build the tree if missing
#   scripts/criu-env.sh run CMD ARGS   setup, then run CMD inside the tree
#
# Needs root. The tree lives in $WASMIX_CRIU_ROOT (default /var/lib/wasmix-criu).
set -euo pipefail
R="${WASMIX_CRIU_ROOT:-/var/lib/wasmix-criu}"

setup() {
    [ -x "$R/usr/sbin/criu" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "criu-env: needs root (debootstrap, mount namespaces)" >&2
        exit 1
    fi
    dpkg -s debootstrap >/dev/null 2>&1 ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    rm -rf "$R.partial"
    debootstrap --variant=minbase --include=criu,coreutils sid "$R.partial" \
        http://deb.debian.org/debian >"${TMPDIR:-/tmp}/criu-env-debootstrap.log" 2>&1 || {
        echo "criu-env: debootstrap failed, see ${TMPDIR:-/tmp}/criu-env-debootstrap.log" >&2
        exit 1
    }
    mkdir -p "$R.partial/oldroot"
    mv "$R.partial" "$R"
}

case "${1:-}" in
setup) setup ;;
run)
    shift
    setup
    # pivot_root rather than chroot: CRIU reads the mount table and wants every mount
    # under its root.
    exec unshare -m -- sh -c '
        R="$1"; shift
        mount --make-rprivate / && mount --bind "$R" "$R" &&
        mount -t proc proc "$R/proc" && mount --rbind /dev "$R/dev" &&
        mount -t sysfs sys "$R/sys" && mount -t tmpfs tmp "$R/tmp" &&
        cd "$R" && pivot_root . oldroot && umount -l /oldroot && cd / && exec "$@"' \
        sh "$R" "$@"
    ;;
*)
    echo "usage: scripts/criu-env.sh setup | run CMD [ARGS...]" >&2
    exit 2
    ;;
esac

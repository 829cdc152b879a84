#!/usr/bin/env python3
"""Builds a one-layer OCI image archive (the OCI image layout, tarred) that `ctr image import`
takes: no registry, no docker. The layer holds the files given; the image config names the
entrypoint. Used by scripts/containerd-test.sh and bench/containerd.sh.

    oci_image.py NAME:TAG OUT.tar --entrypoint /hello.wasm [ARG ...] \
        --file HOST:/PATH [--file ...] [--env K=V ...] [--workdir DIR]
    oci_image.py NAME:TAG OUT.tar --entrypoint hello.wasm --wasm HOST.wasm

With --wasm it is a Wasm OCI artifact instead: one layer holding the module itself (media
type application/vnd.bytecodealliance.wasm.component.layer.v0+wasm, what runwasi reads),
platform wasip1/wasm. containerd 1.6 unpacks every layer, so the test's containerd turns that
layer into an empty tar with a stream processor (scripts/containerd-test.sh): the config's
diff id is that empty tar's.
"""

# sha256 of an empty tar archive (10240 zero bytes), what `tar cf - -T /dev/null` writes.
EMPTY_TAR_DIFF_ID = "sha256:84ff92691f909a05b224e1c56abb4864f01b4f8e3c854e4bb4c7baf1d3f6d652"
import argparse
import hashlib
import io
import json
import tarfile


def blob(tar, data):
    """Adds `data` under blobs/sha256/ and returns its descriptor fields."""
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return {"digest": f"sha256:{digest}", "size": len(data)}


def layer(files):
    """An uncompressed layer tar holding `files` ((host, guest path)), parents included."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        dirs = set()
        for host, guest in files:
            parts = guest.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    t.addfile(info)
            with open(host, "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(guest.strip("/"))
            info.size = len(data)
            info.mode = 0o755
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ref")
    p.add_argument("out")
    p.add_argument("--entrypoint", nargs="+", required=True)
    p.add_argument("--file", action="append", default=[])
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--workdir", default="/")
    p.add_argument("--wasm")
    a = p.parse_args()
    files = [tuple(f.split(":", 1)) for f in a.file]
    ref = a.ref if "/" in a.ref else f"docker.io/library/{a.ref}"
    if a.wasm:
        with open(a.wasm, "rb") as f:
            layer_bytes = f.read()
        layer_type = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm"
        platform = {"architecture": "wasm", "os": "wasip1"}
    else:
        layer_bytes = layer(files)
        layer_type = "application/vnd.oci.image.layer.v1.tar"
        platform = {"architecture": "amd64", "os": "linux"}
    with tarfile.open(a.out, "w") as tar:
        layer_desc = blob(tar, layer_bytes)
        config = {
            **platform,
            "config": {
                "Entrypoint": a.entrypoint,
                "Env": a.env,
                "WorkingDir": a.workdir,
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": [EMPTY_TAR_DIFF_ID if a.wasm else layer_desc["digest"]],
            },
        }
        config_desc = blob(tar, json.dumps(config).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
            "layers": [{"mediaType": layer_type, **layer_desc}],
        }
        manifest_desc = blob(tar, json.dumps(manifest).encode())
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    **manifest_desc,
                    "platform": platform,
                    "annotations": {
                        "io.containerd.image.name": ref,
                        "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1],
                    },
                }
            ],
        }
        for name, doc in [("oci-layout", {"imageLayoutVersion": "1.0.0"}), ("index.json", index)]:
            data = json.dumps(doc).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()

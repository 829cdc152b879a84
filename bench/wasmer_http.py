"""Runs net.wasm's HTTP file server under Wasmer (PyPI wasmer-sdk), for bench/net.sh: prints
its `listening PORT` line, then serves for SECONDS and stops. Usage:
wasmer_http.py NET_WASM FILE SECONDS"""
import asyncio
import pathlib
import sys

import wasmer_sdk as wasmer


async def main(wasm: str, file: str, seconds: float) -> None:
    async with wasmer.Wasmer() as w:
        pkg = await w.packages.load(pathlib.Path(wasm).read_bytes())
        # Wasmer's sandbox files live under /workspace; "host" is its full network.
        sandbox = await w.sandboxes.create(
            packages=[pkg],
            files={"/workspace/file": pathlib.Path(file).read_bytes()},
            network="host",
        )
        proc = await sandbox.command(pkg, ["http", "/workspace/file", "1000000000"]).spawn()
        async for line in proc.stdout.lines():
            print(line, flush=True)
            if line.startswith("listening"):
                break
        await asyncio.sleep(seconds)
        await proc.kill()


asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))

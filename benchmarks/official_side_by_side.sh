#!/usr/bin/env bash
# bytedance/1d-tokenizer vs sbt_jax on the same converted weights (issue 17; see
# benchmarks/official_side_by_side.py): S-128 encode + decode, L-32 generator sampling.
#   bash benchmarks/official_side_by_side.sh /path/to/1d-tokenizer [TORCH_PYTHON]
# TORCH_PYTHON: a python with torch, einops, omegaconf, transformers, accelerate,
# huggingface_hub, safetensors (default /tmp/torchref/bin/python). Weights and converted
# runs are written once under $SIDE_DIR (default workdirs/official_side_by_side).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=${1:?usage: bash benchmarks/official_side_by_side.sh /path/to/1d-tokenizer [TORCH_PYTHON]}
TORCH_PY=${2:-/tmp/torchref/bin/python}
PY=${PYTHON:-.venv/bin/python}
DIR=$(realpath -m "${SIDE_DIR:-workdirs/official_side_by_side}")
[ -d "$DIR/run_l32_generator" ] || "$PY" benchmarks/official_side_by_side.py --side weights --dir "$DIR"
"$TORCH_PY" benchmarks/official_side_by_side.py --side reference --dir "$DIR" --repo "$REPO"
"$PY" benchmarks/official_side_by_side.py --side ours --dir "$DIR"

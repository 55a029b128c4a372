#!/usr/bin/env bash
# Train on the GPUs of this machine: one process drives all visible GPUs (the mesh spans
# them; `--config.mesh.*` shapes it).
#
#   launch/gpu.sh --setup                                     # once: .venv with jax[cuda12]
#   launch/gpu.sh --config configs/titok_imagenet256.py:s128 --workdir workdirs/titok_s128 \
#       --gpus 0,1,2,3 -- --config.data.data_dir=/data/tensorflow_datasets
#   launch/gpu.sh ... --dry-run                               # print the commands only
#
# Flags: --config C (default configs/titok_imagenet256.py:s128), --workdir DIR (required to
# train), --gpus LIST (CUDA_VISIBLE_DEVICES; default: all), --setup (make .venv a Python
# 3.11 virtualenv with uv unless it exists, refuse an older one, and install the pinned
# requirements and jax[cuda12] of the same version into it: launch/python_env.sh), --dry-run.
# Training runs $PYTHON (default .venv/bin/python).
# Arguments after `--` go to sbt_jax.main. Re-running the same command resumes from the
# latest checkpoint; SIGTERM (e.g. `kill PID`) saves a checkpoint and stops cleanly.
# Several GPU hosts: run `python -m sbt_jax.main ... --distributed` on each (SLURM and
# Open MPI launches are detected by jax.distributed.initialize()).
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

CONFIG="configs/titok_imagenet256.py:s128"
WORKDIR=""
GPUS=""
SETUP=0
DRY_RUN=0
MAIN_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) CONFIG="$2"; shift ;;
    --workdir) WORKDIR="$2"; shift ;;
    --gpus) GPUS="$2"; shift ;;
    --setup) SETUP=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) usage 0 ;;
    --) shift; MAIN_ARGS=("$@"); break ;;
    *) echo "gpu.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "$0")/.."
# shellcheck source=launch/python_env.sh
source launch/python_env.sh
PYTHON="${PYTHON:-.venv/bin/python}"

run_cmd() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [[ "${DRY_RUN}" == 0 ]]; then
    "$@"
  fi
}

if [[ "${SETUP}" == 1 ]]; then
  run_cmd bash -c "set -eo pipefail; $(venv_setup_line cuda12)"
fi
if [[ -z "${WORKDIR}" ]]; then
  if [[ "${SETUP}" == 1 ]]; then
    exit 0
  fi
  echo "gpu.sh: --workdir is required (see --help)" >&2
  exit 2
fi
env_vars=()
if [[ -n "${GPUS}" ]]; then
  env_vars=("CUDA_VISIBLE_DEVICES=${GPUS}")
fi
run_cmd env "${env_vars[@]}" "${PYTHON}" -m sbt_jax.main --config "${CONFIG}" \
  --workdir "${WORKDIR}" "${MAIN_ARGS[@]}"

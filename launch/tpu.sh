#!/usr/bin/env bash
# Train on a Cloud TPU VM pod slice: create (or reuse) it, put the code and its requirements
# on every worker, run `python -m sbt_jax.main --distributed` on all workers, stream the log
# of worker 0, delete the slice on request.
#
#   launch/tpu.sh all --name titok-b64 --zone us-central2-b --accelerator v4-32 \
#       --config configs/titok_imagenet256.py:b64 --workdir gs://BUCKET/titok_b64 \
#       -- --config.data.data_dir=gs://BUCKET/tensorflow_datasets
#   launch/tpu.sh logs --name titok-b64 --zone us-central2-b      # re-attach to the log
#   launch/tpu.sh delete --name titok-b64 --zone us-central2-b
#   launch/tpu.sh all ... --dry-run                               # print every command only
#
# Steps (any of them, in this order when several are given; `all` = create setup run logs):
#   create  create the TPU VM slice unless one of that name exists (--spot for a spot slice)
#   setup   copy the code (the local git HEAD, or --repo/--branch cloned on each worker),
#           make ~/sbt_jax/.venv a Python 3.11 virtualenv (uv; the image's Python is 3.10,
#           the pins need >= 3.11: launch/python_env.sh) and install the pinned requirements
#           plus jax[tpu] into it on every worker
#   run     start training (.venv/bin/python) on every worker in the background (nohup;
#           survives ssh drops). Re-running `run` after a preemption resumes from the latest
#           checkpoint in --workdir, which must be on GCS (gs://) so that all workers share it
#   logs    stream worker 0's training log (Ctrl-C stops streaming, not training)
#   stop    kill the training processes (SIGTERM: they save a checkpoint first)
#   delete  delete the slice
# Arguments after `--` are passed to sbt_jax.main (e.g. --config.a.b=v overrides).
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

NAME="sbt-jax-${USER:-user}"
ZONE="us-central2-b"
PROJECT=""
ACCELERATOR="v4-32"
VERSION="tpu-ubuntu2204-base"
CONFIG="configs/titok_imagenet256.py:b64"
WORKDIR=""
REPO=""
BRANCH="main"
SPOT=0
DRY_RUN=0
REMOTE_DIR="sbt_jax"
LOG_FILE="sbt_jax_train.log"
STEPS=()
MAIN_ARGS=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    create|setup|run|logs|stop|delete) STEPS+=("$1") ;;
    all) STEPS+=(create setup run logs) ;;
    --name) NAME="$2"; shift ;;
    --zone) ZONE="$2"; shift ;;
    --project) PROJECT="$2"; shift ;;
    --accelerator) ACCELERATOR="$2"; shift ;;
    --version) VERSION="$2"; shift ;;
    --config) CONFIG="$2"; shift ;;
    --workdir) WORKDIR="$2"; shift ;;
    --repo) REPO="$2"; shift ;;
    --branch) BRANCH="$2"; shift ;;
    --spot) SPOT=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) usage 0 ;;
    --) shift; MAIN_ARGS=("$@"); break ;;
    *) echo "tpu.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ ${#STEPS[@]} -eq 0 ]]; then
  echo "tpu.sh: no step given: create, setup, run, logs, stop, delete or all" >&2
  exit 2
fi

cd "$(dirname "$0")/.."
# shellcheck source=launch/python_env.sh
source launch/python_env.sh

# Prints a command (shell-quoted) and runs it unless --dry-run.
run_cmd() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [[ "${DRY_RUN}" == 0 ]]; then
    "$@"
  fi
}

GCLOUD_TPU=(gcloud compute tpus tpu-vm)
LOCATION=(--zone "${ZONE}")
if [[ -n "${PROJECT}" ]]; then
  LOCATION+=(--project "${PROJECT}")
fi

# Runs a shell command line on every worker of the slice.
on_all_workers() {
  run_cmd "${GCLOUD_TPU[@]}" ssh "${NAME}" "${LOCATION[@]}" --worker=all --command "$1"
}

step_create() {
  if [[ "${DRY_RUN}" == 0 ]] && "${GCLOUD_TPU[@]}" describe "${NAME}" "${LOCATION[@]}" \
      >/dev/null 2>&1; then
    echo "TPU VM ${NAME} exists in ${ZONE}: reusing it."
    return
  fi
  local spot=()
  if [[ "${SPOT}" == 1 ]]; then
    spot=(--spot)
  fi
  run_cmd "${GCLOUD_TPU[@]}" create "${NAME}" "${LOCATION[@]}" \
    --accelerator-type "${ACCELERATOR}" --version "${VERSION}" "${spot[@]}"
}

step_setup() {
  if [[ -n "${REPO}" ]]; then
    on_all_workers "rm -rf ${REMOTE_DIR} && git clone --depth 1 --branch $(printf '%q' "${BRANCH}") $(printf '%q' "${REPO}") ${REMOTE_DIR}"
  else
    local archive="/tmp/${NAME}-code.tar.gz"
    run_cmd git archive --format=tar.gz --prefix="${REMOTE_DIR}/" -o "${archive}" HEAD
    run_cmd "${GCLOUD_TPU[@]}" scp "${archive}" "${NAME}:code.tar.gz" "${LOCATION[@]}" \
      --worker=all
    on_all_workers "rm -rf ${REMOTE_DIR} && tar xzf code.tar.gz"
  fi
  on_all_workers "set -eo pipefail; cd ${REMOTE_DIR}; $(venv_setup_line tpu)"
}

step_run() {
  if [[ "${WORKDIR}" != gs://* ]]; then
    echo "tpu.sh run: --workdir must be a gs:// path that every worker can write (got '${WORKDIR}')" >&2
    exit 2
  fi
  local main=(.venv/bin/python -m sbt_jax.main --config "${CONFIG}" --workdir "${WORKDIR}"
              --distributed "${MAIN_ARGS[@]}")
  local quoted
  quoted="$(printf '%q ' "${main[@]}")"
  on_all_workers "cd ${REMOTE_DIR} && nohup ${quoted}> ~/${LOG_FILE} 2>&1 < /dev/null &"
}

step_logs() {
  run_cmd "${GCLOUD_TPU[@]}" ssh "${NAME}" "${LOCATION[@]}" --worker=0 \
    --command "tail -n 100 -F ~/${LOG_FILE}"
}

step_stop() {
  on_all_workers "pkill -TERM -f 'bin/python -m sbt_jax.main' || true"
}

step_delete() {
  run_cmd "${GCLOUD_TPU[@]}" delete "${NAME}" "${LOCATION[@]}" --quiet
}

for step in "${STEPS[@]}"; do
  "step_${step}"
done

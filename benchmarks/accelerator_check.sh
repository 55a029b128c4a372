#!/usr/bin/env bash
# Device check of a GPU or TPU host (one device; sized for a 15-minute slot, not yet run on one):
#   1. the fast tests (FAST_TESTS below) on the device;
#   2. TiTok-S-128 (batch 64) and TiTok-B-64 (batch 32) train steps in bfloat16: images/s,
#      XLA FLOPs/step and MFU against the device's bf16 dense peak (accelerator_check.py);
#   3. the peak device memory of each step (memory_stats()['peak_bytes_in_use']);
#   4. MaskGIT sampling + decoding speed over TiTok-S-128 (generator.py --benchmarks sample).
# Each step's records (command, git revision, device kind) are appended to
# benchmarks/results.jsonl. Every step runs even if an earlier one failed; the exit status is
# 1 if any failed.
#
#   timeout 15m benchmarks/accelerator_check.sh       # on the GPU/TPU host
#   benchmarks/accelerator_check.sh --dry             # on a CPU: every step at tiny sizes
#                                     (runlocal S-128 and MaskGIT, 1 step), ~1-2 min on 2 cores
# Environment: RESULTS=FILE (where records go; --dry: a new temp file unless given, never
# benchmarks/results.jsonl), PEAK_FLOPS=F (peak FLOP/s of a device missing from the table),
# PYTHON (default .venv/bin/python), DRY=1 (as --dry).
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

DRY="${DRY:-0}"
for arg in "$@"; do
  case "${arg}" in
    --dry) DRY=1 ;;
    -h|--help) usage 0 ;;
    *) echo "accelerator_check.sh: unknown argument '${arg}' (see --help)" >&2; exit 2 ;;
  esac
done

if [[ -n "${RESULTS:-}" ]]; then
  RESULTS="$(realpath -m "${RESULTS}")"  # relative to where it was called from
fi
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
FAST_TESTS=(tests/test_config.py tests/test_attention.py tests/test_models.py
            tests/test_generator_sampling.py)
if [[ "${DRY}" == 1 ]]; then
  export JAX_PLATFORMS=cpu
  RESULTS="${RESULTS:-$(mktemp -t accelerator_check.XXXXXX.jsonl)}"
  if [[ "$(realpath -m "${RESULTS}")" == "$(realpath -m benchmarks/results.jsonl)" ]]; then
    echo "accelerator_check.sh: --dry does not write benchmarks/results.jsonl" >&2
    exit 2
  fi
  FAST_TESTS=(tests/test_config.py -k 'parse_variants or pick_one')
  TRAIN=(s128:2)  # config:batch; B-64 runs the same code
  TRAIN_FLAGS=(--tiny --steps 1 --warmup 1)
  SAMPLE=(--config 'configs/generator_imagenet256.py:maskgit,runlocal'
          --tokenizer_config 'configs/titok_imagenet256.py:s128,runlocal'
          --sample_batch 4 --steps 1 --warmup 0)
else
  RESULTS="${RESULTS:-benchmarks/results.jsonl}"
  TRAIN=(s128:64 b64:32)
  TRAIN_FLAGS=(--steps 10 --warmup 2)
  SAMPLE=(--config configs/generator_imagenet256.py:maskgit
          --tokenizer_config configs/titok_imagenet256.py:s128
          --sample_batch 64 --steps 3 --warmup 1)
fi

FAILED=()
# Runs one step of the check; a failure is noted and the next step runs.
step() {
  local name="$1" start="${SECONDS}"
  shift
  echo "== ${name}"
  if "$@"; then
    echo "== ${name}: done in $((SECONDS - start)) s"
  else
    echo "== ${name}: FAILED (exit $?) after $((SECONDS - start)) s"
    FAILED+=("${name}")
  fi
}

junit="$(mktemp -t accelerator_check_junit.XXXXXX.xml)"
step "fast tests" "${PY}" -m pytest -q -p no:cacheprovider --junitxml="${junit}" \
  "${FAST_TESTS[@]}"
step "fast tests record" "${PY}" benchmarks/accelerator_check.py --out "${RESULTS}" tests \
  --junit "${junit}" --files "${FAST_TESTS[*]}"
for config_batch in "${TRAIN[@]}"; do
  step "train ${config_batch}" "${PY}" benchmarks/accelerator_check.py --out "${RESULTS}" \
    train --config "${config_batch%:*}" --batch "${config_batch#*:}" "${TRAIN_FLAGS[@]}" \
    --peak_flops "${PEAK_FLOPS:-0}"
done
step "sampling" "${PY}" benchmarks/generator.py "${SAMPLE[@]}" --benchmarks sample \
  --name device_check/maskgit_over_s128 --out "${RESULTS}"
rm -f "${junit}"

echo "records: ${RESULTS}"
if [[ ${#FAILED[@]} -gt 0 ]]; then
  echo "accelerator_check.sh: failed: ${FAILED[*]}" >&2
  exit 1
fi

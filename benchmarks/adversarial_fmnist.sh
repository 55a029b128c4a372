#!/usr/bin/env bash
# Issue 18's measurement (docs/adversarial.md): TiTok G=8 on Fashion-MNIST without the
# adversarial recipe, with it, and decoder fine-tuning of the run without it; the same
# MaskGIT on each; seeds 0 1 2 (or those given). Resumable: every piece that already
# finished is skipped, an interrupted run resumes from its checkpoint.
#   bash benchmarks/adversarial_fmnist.sh [SEED ...]   # then: python benchmarks/adversarial_table.py
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
ROOT=$(realpath -m "${ADV_ROOT:-workdirs/adv}")
CFG=configs/selfboottok_fmnist.py
SEEDS=("$@"); [ ${#SEEDS[@]} -gt 0 ] || SEEDS=(0 1 2)

train() {  # train WORKDIR ARGS...: skipped once the run wrote eval_final.json
  local w=$1; shift
  [ -f "$w/eval_final.json" ] && return 0
  echo "== $(date -u +%H:%M) train $w"
  "$PY" -m sbt_jax.main --workdir "$w" "$@" > "$w.log" 2>&1
}

evaluate() {  # PSNR, SSIM, LPIPS, rFD-VGG, codebook on the whole test split
  [ -f "$1/eval/test_all/results.json" ] && return 0
  echo "== $(date -u +%H:%M) evaluate $1"
  "$PY" -m sbt_jax.evaluate --workdir "$1" --out_dir "$1/eval/test_all" > "$1/eval.log" 2>&1
}

gfd() {  # gfd GEN_WORKDIR SEED [TOKENIZER_WORKDIR]: gFD-VGG of 10,000 samples
  local suffix=n10000 extra=()
  if [ $# -gt 2 ]; then suffix="n10000_$(basename "$3")"; extra=(--tokenizer_workdir "$3"); fi
  [ -f "$1/eval_fd/$suffix/results.json" ] && return 0
  echo "== $(date -u +%H:%M) gFD $1 ${3:-}"
  "$PY" benchmarks/generator_fd.py --gen_workdirs "$1" --num_samples 10000 --seed "$2" \
      "${extra[@]}" >> "$1.fd.log" 2>&1
}

mkdir -p "$ROOT"
for s in "${SEEDS[@]}"; do
  base=$ROOT/titok8_s$s adv=$ROOT/titok8_adv_s$s ft=$ROOT/titok8_ft_s$s
  train "$base" --config "$CFG:titok" --config.seed="$s"
  train "$adv" --config "$CFG:titok,adv" --config.seed="$s"
  train "$ft" --config "$CFG:titok,finetune" --config.seed="$s" \
      --config.train.init_from="$base"
  for w in "$base" "$adv" "$ft"; do evaluate "$w"; done
  for w in "$base" "$adv"; do
    gen=$ROOT/gen_$(basename "$w")
    train "$gen" --config configs/generator_fmnist.py --config.seed="$s" \
        --config.train.num_steps=2000 --config.generator.tokenizer_workdir="$w"
    gfd "$gen" "$s"
  done
  # The fine-tune's encoder and quantizer are the base run's: same ids, so the base run's
  # generator serves it; only the decoder differs.
  gfd "$ROOT/gen_titok8_s$s" "$s" "$ft"
done
echo "== $(date -u +%H:%M) done"

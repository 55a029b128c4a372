#!/usr/bin/env bash
# Issue 18's measurement (docs/adversarial.md): TiTok G=8 on Fashion-MNIST without the
# adversarial recipe, with it, and decoder fine-tuning of the run without it; the same
# MaskGIT on each; seeds 0 1 2 (or those given). Resumable: every piece that already
# finished is skipped, an interrupted run resumes from its checkpoint.
#   bash benchmarks/adversarial_fmnist.sh [SEED ...]   # then: python benchmarks/adversarial_table.py
set -euo pipefail
cd "$(dirname "$0")/.."

source benchmarks/run_steps.sh "$@"

mkdir -p "$ADV_ROOT"
for s in "${SEEDS[@]}"; do
  base=$ADV_ROOT/titok8_s$s adv=$ADV_ROOT/titok8_adv_s$s ft=$ADV_ROOT/titok8_ft_s$s
  train "$base" --config "$CFG:titok" --config.seed="$s"
  train "$adv" --config "$CFG:titok,adv" --config.seed="$s"
  train "$ft" --config "$CFG:titok,finetune" --config.seed="$s" \
      --config.train.init_from="$base"
  for w in "$base" "$adv" "$ft"; do evaluate "$w" test_all; done
  for w in "$base" "$adv"; do
    gen=$ADV_ROOT/gen_$(basename "$w")
    generator "$gen" "$s" "$w"
    gfd "$gen" "$s"
  done
  # The fine-tune's encoder and quantizer are the base run's: same ids, so the base run's
  # generator serves it; only the decoder differs.
  gfd "$ADV_ROOT/gen_titok8_s$s" "$s" "$ft"
done
echo "== $(date -u +%H:%M) done"

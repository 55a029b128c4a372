#!/usr/bin/env bash
# Issue 20, step 1 (noise first): TiTok G=8, TiTok G+L=16, SelfBootTok G=8 with local_tokens
# 'ot' and the 'latent' control on Fashion-MNIST (configs/selfboottok_fmnist.py, the tables'
# 1,000 steps), the same MaskGIT (2,000 steps) on each, seeds 0 1 2 (or those given);
# reconstruction on the whole test split (SelfBootTok in compress and generate mode) and
# gFD-VGG of 10,000 samples. The TiTok-8 runs and their generators are those of issue 18's
# benchmarks/adversarial_fmnist.sh (same config and seed), under ADV_ROOT. Resumable.
#   bash benchmarks/selfboottok_seeds.sh [SEED ...]
set -euo pipefail
cd "$(dirname "$0")/.."

source benchmarks/run_steps.sh "$@"

mkdir -p "$SEEDS_ROOT" "$ADV_ROOT"
for s in "${SEEDS[@]}"; do
  titok8=$ADV_ROOT/titok8_s$s titok16=$SEEDS_ROOT/titok16_s$s
  ot=$SEEDS_ROOT/sbt_ot_s$s latent=$SEEDS_ROOT/sbt_latent_s$s
  train "$titok8" --config "$CFG:titok" --config.seed="$s"
  train "$titok16" --config "$CFG:titok16" --config.seed="$s"
  train "$ot" --config "$CFG" --config.seed="$s"
  train "$latent" --config "$CFG:latent" --config.seed="$s"
  for w in "$titok8" "$titok16" "$ot" "$latent"; do evaluate "$w" test_all; done
  for w in "$ot" "$latent"; do evaluate "$w" test_all_generate --mode generate; done
  for w in "$titok8" "$titok16" "$ot" "$latent"; do
    gen=$(dirname "$w")/gen_$(basename "$w")
    generator "$gen" "$s" "$w"
    gfd "$gen" "$s"  # SelfBootTok decodes in generate mode (its aligner's local ids)
  done
done
echo "== $(date -u +%H:%M) done"

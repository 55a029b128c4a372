#!/usr/bin/env bash
# Issue 20, step 1 (noise first): TiTok G=8, TiTok G+L=16, SelfBootTok G=8 with local_tokens
# 'ot' and the 'latent' control on Fashion-MNIST (configs/selfboottok_fmnist.py, the tables'
# 1,000 steps), the same MaskGIT (2,000 steps) on each, seeds 0 1 2 (or those given);
# reconstruction on the whole test split (SelfBootTok in compress and generate mode) and
# gFD-VGG of 10,000 samples. The TiTok-8 runs and their generators are those of issue 18's
# benchmarks/adversarial_fmnist.sh (same config and seed), under ADV_ROOT. Resumable; each
# finished row's results are archived under benchmarks/runs/ (run_steps.sh's ARCHIVE).
#   bash benchmarks/selfboottok_seeds.sh [SEED ...]
set -euo pipefail
cd "$(dirname "$0")/.."

source benchmarks/run_steps.sh "$@"

mkdir -p "$SEEDS_ROOT" "$ADV_ROOT"
for s in "${SEEDS[@]}"; do  # SelfBootTok's gFD decodes in generate mode
  row "$ADV_ROOT/titok8_s$s" "$s" "$CFG:titok"
  row "$SEEDS_ROOT/titok16_s$s" "$s" "$CFG:titok16"
  row "$SEEDS_ROOT/sbt_ot_s$s" "$s" "$CFG"
  row "$SEEDS_ROOT/sbt_latent_s$s" "$s" "$CFG:latent"
done
echo "== $(date -u +%H:%M) done"

#!/usr/bin/env bash
# Issue 20, step 1's longer horizon: TiTok G=8 and the best SelfBootTok reading at 3x the
# protocol's steps (tokenizer 3,000, MaskGIT 6,000; the learning-rate schedules stretch with
# them), otherwise benchmarks/selfboottok_seeds.sh's protocol: whole test split, SelfBootTok
# in generate mode, gFD-VGG of 10,000 samples. Seeds 0 1 2 (or those given). Resumable.
#   SBT_VARIANT=ema bash benchmarks/selfboottok_horizon.sh [SEED ...]
# SBT_VARIANT: a configs/selfboottok_fmnist.py variant ('' = the default 'ot' reading);
# the runs are SEEDS_ROOT/{titok8,sbt_<variant or ot>}_3x_s<seed> and gen_<run>, their
# results archived under benchmarks/runs/ (run_steps.sh's ARCHIVE) once each row finished.
set -euo pipefail
cd "$(dirname "$0")/.."

source benchmarks/run_steps.sh "$@"

variant=${SBT_VARIANT:-}
steps=3000 GEN_STEPS=6000
mkdir -p "$SEEDS_ROOT"
for s in "${SEEDS[@]}"; do
  row "$SEEDS_ROOT/titok8_3x_s$s" "$s" "$CFG:titok" --config.train.num_steps=$steps
  row "$SEEDS_ROOT/sbt_${variant:-ot}_3x_s$s" "$s" "$CFG${variant:+:$variant}" \
      --config.train.num_steps=$steps
done
echo "== $(date -u +%H:%M) done"

#!/usr/bin/env bash
# Issue 20, step 2: the readings of the paper our design had not measured, each on the
# protocol of benchmarks/selfboottok_seeds.sh (configs/selfboottok_fmnist.py, 1,000 steps,
# whole test split, the same MaskGIT at 2,000 steps, gFD-VGG of 10,000 samples), seeds 0 1 2
# (or those given). Needs the seeds driver's sbt_ot runs (SEEDS_ROOT, or their archive).
# Resumable; each finished row's results are archived under benchmarks/runs/.
#   ema        aligner targets from the EMA encoder (model.align_targets='ema')
#   softlocal  soft local tokens in generate mode (model.generate_local='soft')
#   ft         decoder (+ aligner) fine-tune of sbt_ot with the adversarial recipe; same
#              global ids, so sbt_ot's generator samples, decoded by the fine-tune
#   aligner    a larger aligner (aligner stage, width 128, depth 4) against the frozen
#              sbt_ot, local ids sampled at temperature 1; judged by FD
#   bash benchmarks/selfboottok_variants.sh [SEED ...]
set -euo pipefail
cd "$(dirname "$0")/.."

source benchmarks/run_steps.sh "$@"

for s in "${SEEDS[@]}"; do
  ot=$SEEDS_ROOT/sbt_ot_s$s genot=$SEEDS_ROOT/gen_sbt_ot_s$s
  [ -f "$ot/eval_final.json" ] || restore "$ot" "$genot" ||
      { echo "missing $ot: run selfboottok_seeds.sh $s first" >&2; exit 2; }
  for v in ema softlocal; do row "$SEEDS_ROOT/sbt_${v}_s$s" "$s" "$CFG:$v"; done
  ft=$SEEDS_ROOT/sbt_ot_ft_s$s al=$SEEDS_ROOT/sbt_ot_aligner_s$s
  restore "$ft" "$al" && continue  # archived with their results in sbt_ot's dirs, below
  # Both start from sbt_ot and are judged with its MaskGIT: they need those checkpoints,
  # which the archive does not keep. Retrain them where only archived results are here.
  if [ ! -d "$ot/checkpoints" ] || [ ! -d "$genot/checkpoints" ]; then
    echo "== $(date -u +%H:%M) retrain $ot and $genot for their checkpoints"
    rm -f "$ot/eval_final.json" "$genot/eval_final.json"
    train "$ot" --config "$CFG" --config.seed="$s"
    generator "$genot" "$s" "$ot"
  fi
  train "$ft" --config "$CFG:finetune" --config.seed="$s" --config.train.init_from="$ot"
  evaluate "$ft" test_all
  evaluate "$ft" test_all_generate --mode generate
  gfd "$genot" "$s" "$ft"
  train "$al" --config "$CFG:aligner" --config.seed="$s" --config.aligner.tokenizer_workdir="$ot"
  evaluate "$ot" "test_all_generate_aligner_t1" --mode generate --aligner_workdir "$al" \
      --temperature 1
  if [ ! -f "$genot/eval_fd/n10000_aligner/results.json" ]; then
    echo "== $(date -u +%H:%M) gFD $genot aligner $al"
    "$PY" benchmarks/generator_fd.py --gen_workdirs "$genot" --num_samples 10000 \
        --seed "$s" --aligner_workdir "$al" --out "${RESULTS:-benchmarks/results.jsonl}" \
        >> "$genot.fd.log" 2>&1
  fi
  archive "$ot" "$genot" "$ft" "$al"
done
echo "== $(date -u +%H:%M) done"

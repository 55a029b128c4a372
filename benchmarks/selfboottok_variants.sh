#!/usr/bin/env bash
# Issue 20, step 2: the readings of the paper our design had not measured, each on the
# protocol of benchmarks/selfboottok_seeds.sh (configs/selfboottok_fmnist.py, 1,000 steps,
# whole test split, the same MaskGIT at 2,000 steps, gFD-VGG of 10,000 samples), seeds 0 1 2
# (or those given). Needs the seeds driver's sbt_ot and TiTok-8 runs (SEEDS_ROOT and
# ADV_ROOT, or their archive). Resumable; each finished row's results are archived under
# benchmarks/runs/. READINGS (default: all five, in this order per seed) picks which run:
#   ema        aligner targets from the EMA encoder (model.align_targets='ema')
#   softlocal  soft local tokens in generate mode (model.generate_local='soft')
#   from_ot    two readings that start from sbt_ot's checkpoints:
#              ft: decoder (+ aligner) fine-tune of sbt_ot with the adversarial recipe; same
#              global ids, so sbt_ot's generator samples, decoded by the fine-tune;
#              aligner: a larger aligner (aligner stage, width 128, depth 4) against the
#              frozen sbt_ot, local ids sampled at temperature 1; judged by FD
#   ft_parts   which half of ft helps, from sbt_ot's checkpoints like ft: sbt_ot_ft_nogen
#              (with D, the decoder trained on compress mode only: loss.w_generate=0) and
#              sbt_ot_ft_nod (generate-mode decoder training, no D: adversarial off)
#   titok8_ft  the controls of ft and of sbt_ot_ft_nod: TiTok-8's decoder fine-tuned with the
#              same recipe (issue 18's titok8_ft) and without D (titok8_ft_nod), TiTok-8's
#              generator samples decoded by each
#   [READINGS="from_ot ft_parts titok8_ft"] bash benchmarks/selfboottok_variants.sh [SEED ...]
set -euo pipefail
cd "$(dirname "$0")/.."

source benchmarks/run_steps.sh "$@"

READINGS=${READINGS:-ema softlocal from_ot ft_parts titok8_ft}
for r in $READINGS; do
  case $r in
    ema|softlocal|from_ot|ft_parts|titok8_ft) ;;
    *) echo "READINGS: unknown reading '$r' (choose from ema softlocal from_ot ft_parts" \
            "titok8_ft)" >&2
       exit 2 ;;
  esac
done
wants() { [[ " $READINGS " == *" $1 "* ]]; }

need() {  # need WORKDIR GEN SEED: a base run, here or in the archive; else one line, exit 2
  [ -f "$1/eval_final.json" ] || restore "$1" "$2" ||
      { echo "missing $1: run selfboottok_seeds.sh $3 first" >&2; exit 2; }
}

checkpoints() {  # checkpoints WORKDIR GEN SEED CONFIG: a fine-tune starts from a base run's
  # checkpoints and is judged with its MaskGIT's, which the archive does not keep: retrain
  # the two where only their archived results are here
  [ -d "$1/checkpoints" ] && [ -d "$2/checkpoints" ] && return 0
  echo "== $(date -u +%H:%M) retrain $1 and $2 for their checkpoints"
  rm -f "$1/eval_final.json" "$2/eval_final.json"
  train "$1" --config "$4" --config.seed="$3"
  generator "$2" "$3" "$1"
}

fine_tune() {  # fine_tune WORKDIR BASE GEN SEED BASE_CONFIG FT_CONFIG [ARGS...]: BASE's
  # decoder fine-tune (FT_CONFIG and ARGS) from its checkpoints, its whole-split eval
  # (SelfBootTok's, sbt_*, in generate mode too) and GEN's samples decoded by it: the
  # encoder and quantizers stay frozen, so BASE's MaskGIT serves it
  local w=$1 base=$2 gen=$3 s=$4 base_cfg=$5 ft_cfg=$6; shift 6
  checkpoints "$base" "$gen" "$s" "$base_cfg"
  train "$w" --config "$ft_cfg" --config.seed="$s" --config.train.init_from="$base" "$@"
  evaluate "$w" test_all
  [[ $(basename "$w") != sbt_* ]] || evaluate "$w" test_all_generate --mode generate
  gfd "$gen" "$s" "$w"
}

for s in "${SEEDS[@]}"; do
  ot=$SEEDS_ROOT/sbt_ot_s$s genot=$SEEDS_ROOT/gen_sbt_ot_s$s
  titok=$ADV_ROOT/titok8_s$s gentitok=$ADV_ROOT/gen_titok8_s$s
  if wants from_ot || wants ft_parts; then need "$ot" "$genot" "$s"; fi
  if wants titok8_ft; then need "$titok" "$gentitok" "$s"; fi
  for v in ema softlocal; do
    if wants $v; then row "$SEEDS_ROOT/sbt_${v}_s$s" "$s" "$CFG:$v"; fi
  done
  ft=$SEEDS_ROOT/sbt_ot_ft_s$s al=$SEEDS_ROOT/sbt_ot_aligner_s$s
  # Both are archived with their results in sbt_ot's dirs (the gFDs, the aligner's eval).
  if wants from_ot && ! restore "$ft" "$al"; then
    fine_tune "$ft" "$ot" "$genot" "$s" "$CFG" "$CFG:finetune"
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
  fi
  for part in nogen nod; do
    w=$SEEDS_ROOT/sbt_ot_ft_${part}_s$s  # its gFD is archived in sbt_ot's generator's dir
    if wants ft_parts && ! restore "$w"; then
      if [ $part = nogen ]; then half=--config.loss.w_generate=0
      else half=--config.adversarial.enabled=False; fi
      fine_tune "$w" "$ot" "$genot" "$s" "$CFG" "$CFG:finetune" "$half"
      archive "$ot" "$genot" "$w"
    fi
  done
  for part in '' _nod; do
    tft=$ADV_ROOT/titok8_ft${part}_s$s  # its gFD is archived in TiTok-8's generator's dir
    if wants titok8_ft && ! restore "$tft"; then
      half=(); [ -z "$part" ] || half=(--config.adversarial.enabled=False)
      fine_tune "$tft" "$titok" "$gentitok" "$s" "$CFG:titok" "$CFG:titok,finetune" "${half[@]}"
      archive "$titok" "$gentitok" "$tft"
    fi
  done
done
echo "== $(date -u +%H:%M) done"

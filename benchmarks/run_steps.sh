# shellcheck shell=bash
# Resumable steps of the multi-seed experiments (sourced by adversarial_fmnist.sh and the
# selfboottok_*.sh drivers): each step is skipped once its output exists, and an interrupted
# training run resumes from its checkpoint. gFD records go to RESULTS (default
# benchmarks/results.jsonl). A driver runs `source benchmarks/run_steps.sh "$@"` from the
# repository root, which also sets the variables below.
# Workdirs do not outlive the machine; `archive` copies a finished run's result files (a few
# KB of JSON, no checkpoints) to ARCHIVE, which is committed, and `restore` brings them back
# into a new checkout's workdirs, so every step of an archived run is skipped there.

# shellcheck disable=SC2034  # Used by the drivers that source this file.
{
PY=${PYTHON:-.venv/bin/python}                               # the python that runs each step
CFG=configs/selfboottok_fmnist.py                            # the tokenizer config of every run
SEEDS_ROOT=$(realpath -m "${SEEDS_ROOT:-workdirs/seeds}")    # issue 20's runs
ADV_ROOT=$(realpath -m "${ADV_ROOT:-workdirs/adv}")          # issue 18's runs
ARCHIVE=$(realpath -m "${ARCHIVE:-benchmarks/runs}")         # committed results of finished runs
SEEDS=("$@"); [ ${#SEEDS[@]} -gt 0 ] || SEEDS=(0 1 2)        # the driver's arguments
}

archived() {  # archived WORKDIR: where ARCHIVE keeps its results, ARCHIVE/<root name>/<run>
  echo "$ARCHIVE/$(basename "$(dirname "$1")")/$(basename "$1")"
}

archive() {  # archive WORKDIR...: copy each run's eval_final.json, eval/*/results.json and
  # eval_fd/*/results.json to `archived WORKDIR` (call it once every step of those runs ran)
  local w a
  for w in "$@"; do
    a=$(archived "$w")
    mkdir -p "$a"
    (cd "$w" && find . \( -path ./eval_final.json -o -path './eval/*/results.json' \
        -o -path './eval_fd/*/results.json' \) -print0 | xargs -0 -r cp --parents -t "$a")
  done
}

restore() {  # restore WORKDIR...: if every run was archived, copy the archived files into
  # the workdirs (files already there are kept) and succeed; otherwise copy nothing and fail.
  # All or nothing: a tokenizer restored without its generator would be "trained" without a
  # checkpoint to encode with.
  local w f
  for w in "$@"; do [ -f "$(archived "$w")/eval_final.json" ] || return 1; done
  for w in "$@"; do
    while IFS= read -r -d '' f; do  # f: ./eval/NAME/results.json, ...
      [ -e "$w/$f" ] || { mkdir -p "$(dirname "$w/$f")" && cp "$(archived "$w")/$f" "$w/$f"; }
    done < <(cd "$(archived "$w")" && find . -type f -print0)
  done
  echo "== $(date -u +%H:%M) restored $* from $ARCHIVE"
}

train() {  # train WORKDIR ARGS...: skipped once the run wrote eval_final.json
  # The run's own end-of-training eval reads TRAIN_EVAL_IMAGES test images (default 1,000;
  # -1: the config's, e.g. the whole split): the tables' numbers come from `evaluate` below
  # on the whole split, so evaluating it twice would only cost time. Training is unchanged.
  local w=$1; shift
  [ -f "$w/eval_final.json" ] && return 0
  echo "== $(date -u +%H:%M) train $w"
  local eval_images=()
  [ "${TRAIN_EVAL_IMAGES:-1000}" = -1 ] ||
      eval_images=(--config.train.eval_num_images="${TRAIN_EVAL_IMAGES:-1000}")
  "$PY" -m sbt_jax.main --workdir "$w" "$@" "${eval_images[@]}" > "$w.log" 2>&1
}

evaluate() {  # evaluate WORKDIR NAME [ARGS...]: PSNR, SSIM, LPIPS, rFD-VGG, codebook on the
  # whole test split -> WORKDIR/eval/NAME/results.json
  local w=$1 name=$2; shift 2
  [ -f "$w/eval/$name/results.json" ] && return 0
  echo "== $(date -u +%H:%M) evaluate $w $name"
  "$PY" -m sbt_jax.evaluate --workdir "$w" --out_dir "$w/eval/$name" "$@" \
      > "$w.eval_$name.log" 2>&1
}

gfd() {  # gfd GEN_WORKDIR SEED [TOKENIZER_WORKDIR]: gFD-VGG of 10,000 samples
  local suffix=n10000 extra=()
  if [ $# -gt 2 ]; then suffix="n10000_$(basename "$3")"; extra=(--tokenizer_workdir "$3"); fi
  [ -f "$1/eval_fd/$suffix/results.json" ] && return 0
  echo "== $(date -u +%H:%M) gFD $1 ${3:-}"
  "$PY" benchmarks/generator_fd.py --gen_workdirs "$1" --num_samples 10000 --seed "$2" \
      --out "${RESULTS:-benchmarks/results.jsonl}" "${extra[@]}" >> "$1.fd.log" 2>&1
}

generator() {  # generator GEN_WORKDIR SEED TOKENIZER_WORKDIR: the tables' MaskGIT (GEN_STEPS,
  # default 2,000 steps; its eval, validation NLL on cached ids, is cheap: the whole split as
  # in the config)
  TRAIN_EVAL_IMAGES=-1 train "$1" --config configs/generator_fmnist.py --config.seed="$2" \
      --config.train.num_steps="${GEN_STEPS:-2000}" --config.generator.tokenizer_workdir="$3"
}

row() {  # row WORKDIR SEED CONFIG [ARGS...]: one table row, archived once finished: the
  # tokenizer trained with CONFIG, seed SEED and ARGS, its whole-split eval (SelfBootTok's,
  # sbt_*, in generate mode too), its MaskGIT gen_<run> beside it and that MaskGIT's gFD-VGG;
  # or all of it restored from ARCHIVE
  local w=$1 s=$2 cfg=$3 gen; shift 3
  gen=$(dirname "$w")/gen_$(basename "$w")
  restore "$w" "$gen" && return 0
  train "$w" --config "$cfg" --config.seed="$s" "$@"
  evaluate "$w" test_all
  [[ $(basename "$w") != sbt_* ]] || evaluate "$w" test_all_generate --mode generate
  generator "$gen" "$s" "$w"
  gfd "$gen" "$s"  # SelfBootTok decodes in generate mode (its aligner's local ids)
  archive "$w" "$gen"
}

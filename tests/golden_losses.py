"""Golden train losses: 20 steps of the three runlocal configs on the tests' fake data.

The refactors of issue 16 had to keep behaviour bit-identical; these values were recorded
before them and are checked by tests/test_golden_losses.py. Re-record (only for a change
that is meant to alter the numbers, and say so in the commit) with

  .venv/bin/python -m tests.golden_losses --write
  .venv/bin/python -m tests.golden_losses --check     # exact comparison on this machine

Runs use 8 fake CPU devices, like the tests.
"""
import argparse
import json
import os
import pathlib
import sys
import tempfile

GOLDEN_PATH = pathlib.Path(__file__).parent / 'golden' / 'losses_20_steps.json'
NUM_STEPS = 20
# name -> (config module, variant); the generator trains on the titok run's ids.
RUNS = (('titok', 'titok_fmnist', 'runlocal'),
        ('selfboottok', 'selfboottok_fmnist', 'runlocal'),
        ('generator', 'generator_fmnist', 'runlocal'))


def _losses(workdir: str) -> list[float]:
  rows = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  return [row['train/loss'] for row in rows if 'train/loss' in row]


def run_all(data_dir: str, root: str, only=None) -> dict:
  """{name: [loss at step 1..NUM_STEPS]} of the three runs (workdirs under root); `only`:
  a subset of the names (the generator needs titok)."""
  import importlib  # pylint: disable=g-import-not-at-top
  from sbt_jax.trainers import loop  # pylint: disable=g-import-not-at-top
  out, workdirs = {}, {}
  for name, module, variant in RUNS:
    if only and name not in only:
      continue
    c = importlib.import_module(f'configs.{module}').get_config(variant)
    c.data.data_dir = data_dir
    c.train.num_steps = NUM_STEPS
    c.train.log_every = 1
    c.train.eval_every = -1
    c.train.checkpoint_every = NUM_STEPS
    if name == 'generator':
      c.generator.tokenizer_workdir = workdirs['titok']
    workdirs[name] = os.path.join(root, name)
    loop.train_and_evaluate(c, workdirs[name])
    out[name] = _losses(workdirs[name])
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--write', action='store_true', help=f'write {GOLDEN_PATH}')
  parser.add_argument('--check', action='store_true', help='compare exactly with it')
  parser.add_argument('--only', default='', help='comma-separated subset of the runs')
  args = parser.parse_args()
  os.environ.setdefault('SBT_JAX_HOST_MALLOC', 'default')
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_num_cpu_devices', 8)
  import pytest  # pylint: disable=g-import-not-at-top
  from tests import fakes  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
    data_dir = fakes.build_fake_tfds(pathlib.Path(tmp), mp)
    only = set(args.only.split(',')) if args.only else None
    losses = run_all(data_dir, os.path.join(tmp, 'runs'), only)
  if args.write:
    GOLDEN_PATH.parent.mkdir(exist_ok=True)
    GOLDEN_PATH.write_text(json.dumps(losses, indent=1) + '\n')
    print(f'wrote {GOLDEN_PATH}')
  if args.check:
    golden = json.loads(GOLDEN_PATH.read_text())
    same = all(golden[k] == losses[k] for k in losses)
    for k in losses:
      diffs = [abs(a - b) for a, b in zip(golden[k], losses[k])]
      first = next((i + 1 for i, d in enumerate(diffs) if d), None)
      print(f'{k}: ' + ('bit-identical' if golden[k] == losses[k] else
                        f'max diff {max(diffs):.3g}, first at step {first}'))
    sys.exit(0 if same else 1)
  if not (args.write or args.check):
    print(json.dumps(losses))


if __name__ == '__main__':
  main()

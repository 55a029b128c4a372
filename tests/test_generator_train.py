"""stage='generator' on the shared tiny TiTok run: end to end, token cache, step compiles
once, sample command, clear errors for a missing tokenizer."""
import json
import os
import subprocess
import sys

import chex
import jax
import numpy as np
import pytest

from configs import generator_fmnist
from sbt_jax import checkpointing
from sbt_jax import inference
from sbt_jax import runs
from sbt_jax import sharding
from sbt_jax.data import pipeline
from sbt_jax.data import token_cache
from sbt_jax.sampling import restored
from sbt_jax.trainers import generator as generator_trainer
from sbt_jax.trainers import loop
from sbt_jax.trainers import setup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(data_dir, tokenizer_workdir, variant='runlocal', **generator):
  c = generator_fmnist.get_config(variant)
  c.data.data_dir = data_dir
  c.generator.tokenizer_workdir = tokenizer_workdir
  c.generator.attention_impl = 'xla'  # compiles faster than the CPU default; same math
  for k, v in generator.items():
    c.generator[k] = v
  return c


@pytest.fixture(scope='module')
def generator_run(fmnist_data_dir, tiny_workdir, tmp_path_factory):
  """4 MaskGIT steps from the token cache; eval (loss + sample grid) at the end."""
  workdir = str(tmp_path_factory.mktemp('gen') / 'w')
  c = _config(fmnist_data_dir, tiny_workdir, use_token_cache=True)
  c.generator.sampling.guidance_scale = 1.0
  _, results = loop.train_and_evaluate(c, workdir)
  return workdir, results


def test_generator_stage_end_to_end(generator_run):
  workdir, results = generator_run
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  losses = [r['train/loss'] for r in rows if 'train/loss' in r]
  assert losses and np.all(np.isfinite(losses))
  # Cross-entropy over 64 codes starts near log(64) = 4.16 (plus label smoothing).
  assert 3.0 < losses[0] < 6.0
  assert np.isfinite(results['eval/loss']) and results['eval/num_images'] == 20
  assert os.path.getsize(os.path.join(workdir, 'images', 'samples_0000004.png')) > 100
  with open(os.path.join(workdir, 'tokenizer.json')) as f:
    assert json.load(f)['step'] == 4


def test_token_cache_holds_the_tokenizer_ids_and_is_reused(generator_run, fmnist_data_dir,
                                                           tiny_workdir, monkeypatch):
  workdir, _ = generator_run
  cache_dir = os.path.join(workdir, 'token_cache')
  assert sorted(os.listdir(cache_dir)) == ['fashion_mnist_deb_test_28px_tok4.npz',
                                           'fashion_mnist_deb_train_28px_tok4.npz']
  with np.load(os.path.join(cache_dir, 'fashion_mnist_deb_test_28px_tok4.npz')) as data:
    ids, labels = data['ids'], data['label']
  # The cached ids are the tokenizer's ids of the split, in order, with the split's labels.
  c = _config(fmnist_data_dir, tiny_workdir)
  c.data.eval_batch_size = 8
  batches = list(pipeline.make_eval_loader(c.data))
  images = np.concatenate([b['image'] for b in batches])[:20]
  np.testing.assert_array_equal(ids, inference.Tokenizer(tiny_workdir).encode(images))
  np.testing.assert_array_equal(labels, np.concatenate([b['label'] for b in batches])[:20])
  # A second run reads the cache instead of encoding again.
  mtime = os.path.getmtime(os.path.join(cache_dir, 'fashion_mnist_deb_train_28px_tok4.npz'))

  def no_encoding(*args, **kwargs):
    raise AssertionError('the token cache was encoded again')
  monkeypatch.setattr(token_cache, '_encode_split', no_encoding)
  task = generator_trainer.GeneratorTask(c, sharding.make_mesh(c.mesh))
  c.generator.use_token_cache = True
  batch = next(iter(task.make_train_loader(workdir)))
  assert batch['ids'].shape == (16, 8) and batch['label'].shape == (16,)
  assert mtime == os.path.getmtime(
      os.path.join(cache_dir, 'fashion_mnist_deb_train_28px_tok4.npz'))
  # A cache written by another tokenizer is refused.
  with pytest.raises(ValueError, match='written by tokenizer'):
    token_cache.load_or_build(os.path.join(cache_dir, 'fashion_mnist_deb_test_28px_tok4.npz'),
                              c.data, 'test', None, None, tokenizer='/other@1')


@pytest.mark.parametrize('kind', ['maskgit', 'ar'])
def test_generator_step_compiles_once(fmnist_data_dir, tiny_workdir, kind):
  """3 steps, one trace: MaskGIT encoding images inside the jitted step (its ids are the
  tokenizer's), AR on ids as the cache serves them."""
  c = _config(fmnist_data_dir, tiny_workdir, 'runlocal' + (',ar' if kind == 'ar' else ''))
  c.optim.learning_rate = 3e-3
  mesh = sharding.make_mesh(c.mesh)
  task = generator_trainer.GeneratorTask(c, mesh)
  step = task.train_step
  chex.clear_trace_counter()  # the parametrized cases share the lambda below
  task.train_step = chex.assert_max_traces(
      lambda state, frozen, batch, rng: step(state, frozen, batch, rng), n=1)
  prepared = setup.prepare(task, c, mesh)
  state, frozen, step_fn = prepared.state, prepared.frozen, prepared.step_fn
  local = next(iter(pipeline.make_train_loader(c.data, seed=0)))
  if kind == 'ar':  # ids as the token cache serves them
    local = {'ids': np.random.RandomState(0).randint(0, 64, (16, 8)).astype(np.int32),
             'label': local['label']}
  batch = sharding.global_batch(local, mesh)
  losses = []
  for i in range(3):
    state, metrics = step_fn(state, frozen, batch, jax.random.key(i))
    losses.append(float(metrics['loss']))
  assert np.all(np.isfinite(losses)) and int(state.step) == 3
  if kind == 'ar':  # Same batch, same rng, deterministic targets: the loss goes down.
    assert losses[-1] < losses[0]
  if kind == 'maskgit':  # The step's ids are the tokenizer's.
    ids = jax.jit(generator_trainer.batch_ids, static_argnames='adapter')(
        frozen, batch, adapter=task.adapter)
    np.testing.assert_array_equal(ids,
                                  inference.Tokenizer(tiny_workdir).encode(local['image']))


def test_sample_command_writes_class_balanced_png_and_npz(generator_run, tmp_path):
  workdir, _ = generator_run
  out = tmp_path / 'samples'
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS='cpu')
  proc = subprocess.run(
      [sys.executable, '-m', 'sbt_jax.sample', '--workdir', workdir, '--num_samples', '25',
       '--out', str(out), '--seed', '3', '--batch_size', '16'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with np.load(out / 'samples.npz') as data:
    images, labels, ids = data['images'], data['labels'], data['ids']
  assert images.shape == (25, 28, 28, 1) and images.dtype == np.uint8
  assert ids.shape == (25, 8) and ids.max() < 64
  np.testing.assert_array_equal(np.bincount(labels, minlength=10),
                                [3] * 5 + [2] * 5)
  assert os.path.getsize(out / 'grid.png') > 100
  # Seeded: the library call with the same seed and batch size gives the same samples.
  gen = restored.RestoredGenerator(workdir, sampling_overrides={'batch_size': 16})
  again, again_ids = gen.sample(labels, seed=3)
  np.testing.assert_array_equal(again_ids, ids)
  # Same ids; the decoded pixels agree up to float rounding between the command's 1 device
  # and this process's 8 (a value on a .5 boundary may round to the next 8-bit level).
  again_8bit = np.clip(np.round((again + 1) * 127.5), 0, 255)
  assert np.abs(again_8bit - images.astype(np.float64)).max() <= 1
  assert np.mean(again_8bit == images) > 0.99
  assert not np.array_equal(gen.sample(labels, seed=4)[1], ids)
  # The form sbt_jax.evaluate takes for generation metrics (any batch size).
  fn_images = gen.sample_fn()(np.arange(5) % 10, jax.random.key(0))
  assert fn_images.shape == (5, 28, 28, 1) and np.abs(fn_images).max() <= 1
  # TiTok has no aligner to swap.
  with pytest.raises(ValueError, match='no aligner'):
    restored.RestoredGenerator(workdir, aligner_workdir=str(tmp_path))


def test_missing_tokenizer_is_a_clear_error(fmnist_data_dir, tiny_workdir, tmp_path):
  # No such run: names the config.json it looked for.
  c = _config(fmnist_data_dir, str(tmp_path / 'nowhere'))
  with pytest.raises(FileNotFoundError, match='generator.tokenizer_workdir=.*config.json'):
    loop.train_and_evaluate(c, str(tmp_path / 'w1'))
  # A run without checkpoints (e.g. still starting): names the checkpoint directory.
  empty = tmp_path / 'tok_without_ckpt'
  empty.mkdir()
  with open(os.path.join(tiny_workdir, 'config.json')) as src:
    (empty / 'config.json').write_text(src.read())
  c = _config(fmnist_data_dir, str(empty))
  with pytest.raises(checkpointing.CheckpointError,
                     match='generator.tokenizer_workdir=.*No checkpoints in .*checkpoints'):
    loop.train_and_evaluate(c, str(tmp_path / 'w2'))
  # A step that was not saved: lists the available ones.
  c = _config(fmnist_data_dir, tiny_workdir)
  with pytest.raises(checkpointing.CheckpointError, match=r'step 3 .*available: \[2, 4\]'):
    runs.restore_global_tokenizer(tiny_workdir, sharding.make_mesh(c.mesh), step=3)

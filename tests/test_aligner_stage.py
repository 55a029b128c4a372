"""The aligner stage, the two-mode API and CLIs on a trained (tiny) SelfBootTok."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import selfboottok_fmnist
from sbt_jax import inference
from sbt_jax import runs
from sbt_jax.sampling import restored
from sbt_jax.trainers import loop
from tests import test_generator_train

# Every test that needs the (slow) session fixture tiny_aligner_workdir is in this module:
# with pytest-xdist's `--dist loadscope` (pyproject.toml) one worker runs them and builds it
# once.


@pytest.fixture
def aligner_workdir(tiny_aligner_workdir):
  with open(os.path.join(tiny_aligner_workdir, 'eval_final.json')) as f:
    return tiny_aligner_workdir, json.load(f)


def _metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def test_aligner_stage_trains_in_two_phases_and_evaluates(aligner_workdir):
  workdir, final_eval = aligner_workdir
  rows = [r for r in _metrics(workdir) if 'train/phase' in r]
  assert [r['train/phase'] for r in rows] == [1.0, 2.0]  # steps 1-2: alignment; 3-4: CE
  for key in ('eval/psnr', 'eval/generate_psnr', 'eval/local_ce_bits',
              'eval/local_codes_used'):
    assert np.isfinite(final_eval[key]), key


def test_aligner_stage_leaves_every_frozen_parameter_bit_identical(tiny_sbt_workdir,
                                                                   aligner_workdir):
  workdir, _ = aligner_workdir
  base = inference.Tokenizer(tiny_sbt_workdir, batch_size=8)
  swapped = inference.Tokenizer(tiny_sbt_workdir, batch_size=8, aligner_workdir=workdir)
  frozen = {k: v for k, v in base.params.items() if k != 'aligner'}
  swapped_frozen = {k: v for k, v in swapped.params.items() if k != 'aligner'}
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
               frozen, swapped_frozen)
  # The new aligner has another size (runlocal,aligner: width 48 vs 32).
  assert (jax.tree.leaves(swapped.params['aligner'])[0].shape
          != jax.tree.leaves(base.params['aligner'])[0].shape or
          jax.tree.structure(swapped.params['aligner']) != jax.tree.structure(
              base.params['aligner']))
  images = np.random.RandomState(0).uniform(-1, 1, (5, 28, 28, 1)).astype(np.float32)
  # Same global and compress-mode ids; generate mode changes with the aligner.
  np.testing.assert_array_equal(base.encode(images, 'generate'),
                                swapped.encode(images, 'generate'))
  ids = base.encode(images)
  np.testing.assert_array_equal(ids, swapped.encode(images))
  np.testing.assert_array_equal(base.decode(ids), swapped.decode(ids))
  g = base.encode(images, 'generate')
  assert not np.array_equal(base.decode(g), swapped.decode(g))
  # The aligner checkpoint holds only the aligner.
  config = runs.load_config(workdir)
  assert config.stage == 'aligner'
  restored = runs.restore_tokenizer(tiny_sbt_workdir, base.mesh, aligner_workdir=workdir)
  assert set(restored.params['aligner']) == set(swapped.params['aligner'])


@pytest.mark.multi_device
def test_aligner_stage_on_eight_devices_matches_one_device(tiny_sbt_workdir, fmnist_data_dir,
                                                           tmp_path):
  """data=4 x fsdp=2, the frozen tokenizer restored onto that mesh: both phases' losses are
  the 1-device run's."""
  losses = {}
  for name, devices, mesh in (('one', jax.devices()[:1], dict(data=1, fsdp=1)),
                              ('eight', jax.devices(), dict(data=4, fsdp=2))):
    c = selfboottok_fmnist.get_config('runlocal,aligner')
    c.data.data_dir = fmnist_data_dir
    c.aligner.tokenizer_workdir = tiny_sbt_workdir
    c.train.log_every, c.train.eval_every = 1, -1
    c.mesh.data, c.mesh.fsdp = mesh['data'], mesh['fsdp']
    loop.train_and_evaluate(c, str(tmp_path / name), devices=devices)
    rows = _metrics(str(tmp_path / name))
    losses[name] = [(r['step'], r['train/phase'], r['train/loss']) for r in rows
                    if 'train/loss' in r]
  assert [s[:2] for s in losses['one']] == [(1, 1.0), (2, 1.0), (3, 2.0), (4, 2.0)]
  np.testing.assert_allclose(np.array(losses['eight']), np.array(losses['one']), rtol=1e-5,
                             atol=1e-6)


def test_two_mode_api_shapes_and_errors(tiny_sbt_workdir):
  tok = inference.Tokenizer(tiny_sbt_workdir, batch_size=8)
  g, l = tok.num_global, tok.config.model.num_local_tokens
  images = np.random.RandomState(1).uniform(-1, 1, (3, 28, 28, 1)).astype(np.float32)
  compress = tok.encode(images, 'compress')
  generate = tok.encode(images, 'generate')
  assert compress.shape == (3, g + l) and generate.shape == (3, g)
  np.testing.assert_array_equal(compress[:, :g], generate)
  assert tok.decode(compress).shape == images.shape
  argmax = tok.decode(generate)
  np.testing.assert_array_equal(argmax, tok.decode(generate, temperature=0.0, seed=5))
  np.testing.assert_array_equal(tok.decode(generate, 1.0, seed=3),
                                tok.decode(generate, 1.0, seed=3))
  bits = tok.local_nll_bits(compress)
  assert bits.shape == (3,) and np.all(bits >= 0)
  with pytest.raises(ValueError, match=r'\[B, 4 or 8\]'):
    tok.decode(compress[:, :g + 1])
  bad = compress.copy()
  bad[0, g] = tok.config.model.local_codebook_size
  with pytest.raises(ValueError, match='local ids must be in'):
    tok.decode(bad)
  with pytest.raises(ValueError, match='mode='):
    tok.encode(images, 'both')


def test_wrong_workdirs_give_clear_errors(tiny_workdir, tiny_sbt_workdir, aligner_workdir):
  with pytest.raises(ValueError, match='needs a selfboottok'):
    inference.Tokenizer(tiny_workdir, aligner_workdir=aligner_workdir[0])
  with pytest.raises(ValueError, match="not of a stage='aligner' run"):
    inference.Tokenizer(tiny_sbt_workdir, aligner_workdir=tiny_sbt_workdir)
  with pytest.raises(ValueError, match="of an? 'aligner' run, not of a stage='tokenizer'"):
    inference.Tokenizer(aligner_workdir[0])
  titok = inference.Tokenizer(tiny_workdir, batch_size=8)
  with pytest.raises(ValueError, match="mode='generate' needs a selfboottok"):
    titok.encode(np.zeros((1, 28, 28, 1), np.float32), 'generate')
  c = selfboottok_fmnist.get_config('runlocal,aligner')
  c.aligner.tokenizer_workdir = tiny_workdir
  with pytest.raises(ValueError, match="holds a 'titok' tokenizer"):
    loop.train_and_evaluate(c, str(aligner_workdir[0]) + '_bad')


def test_generate_mode_cli(tiny_sbt_workdir, aligner_workdir, tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  Image.fromarray((np.random.RandomState(0).rand(28, 28) * 255).astype(np.uint8)).save(
      tmp_path / 'a.png')
  env = {**os.environ, 'PYTHONPATH': os.getcwd(), 'JAX_PLATFORMS': 'cpu'}
  run = lambda *args: subprocess.run([sys.executable, '-m', *args], capture_output=True,
                                     text=True, env=env, check=False)
  r = run('sbt_jax.encode', f'--workdir={tiny_sbt_workdir}', f'--images={tmp_path / "a.png"}',
          f'--out={tmp_path / "ids.npz"}', '--mode=generate')
  assert r.returncode == 0, r.stderr[-2000:]
  assert np.load(tmp_path / 'ids.npz')['ids'].shape == (1, 4)
  r = run('sbt_jax.decode', f'--workdir={tiny_sbt_workdir}', f'--ids={tmp_path / "ids.npz"}',
          f'--out_dir={tmp_path / "out"}', '--temperature=1.0', '--seed=2',
          f'--aligner_workdir={aligner_workdir[0]}')
  assert r.returncode == 0, r.stderr[-2000:]
  assert os.path.isfile(tmp_path / 'out' / '00000.png')


def test_generator_on_selfboottok_global_ids_with_swapped_aligner(
    fmnist_data_dir, tiny_sbt_workdir, tiny_aligner_workdir, tmp_path):
  """A generator over SelfBootTok's G global ids; swapping in an aligner-stage aligner of
  another size changes the decoded samples, not the generator or its ids."""
  workdir = str(tmp_path / 'gen_sbt')
  c = test_generator_train._config(fmnist_data_dir, tiny_sbt_workdir, use_token_cache=False)
  c.train.eval_every = -1
  loop.train_and_evaluate(c, workdir)
  sbt_config = inference.load_config(tiny_sbt_workdir)
  samples = []
  for aligner in (None, tiny_aligner_workdir):
    gen = restored.RestoredGenerator(workdir, aligner_workdir=aligner,
                                     sampling_overrides={'batch_size': 8})
    assert gen.adapter.num_tokens == sbt_config.model.num_global_tokens  # G, never G + L
    samples.append(gen.sample(np.arange(8) % 10, seed=0))
  (images_a, ids_a), (images_b, ids_b) = samples
  assert ids_a.shape == (8, sbt_config.model.num_global_tokens)
  np.testing.assert_array_equal(ids_a, ids_b)  # the same generator, the same global ids
  assert not np.array_equal(images_a, images_b)  # another aligner: other local ids/images

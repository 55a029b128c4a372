"""The shared loop: exact resume (state + data order), errors that name the problem."""
import json
import os
import shutil

import jax
import numpy as np
import pytest

from configs import titok_fmnist
from sbt_jax import checkpointing
from sbt_jax.trainers import loop


def _config(data_dir, **train):
  c = titok_fmnist.get_config('runlocal')
  c.data.data_dir = data_dir
  c.data.global_batch_size = 8
  c.data.eval_batch_size = 8
  c.loss.perceptual_weight = 0.0
  c.train.num_steps = 4
  c.train.checkpoint_every = 2
  c.train.keep_checkpoints = 5
  c.train.eval_every = -1
  c.train.log_every = 1
  for k, v in train.items():
    c.train[k] = v
  return c


@pytest.fixture(scope='module')
def finished_run(fmnist_data_dir, tmp_path_factory):
  """4 uninterrupted steps with checkpoints at 2 and 4."""
  workdir = str(tmp_path_factory.mktemp('run') / 'w')
  state, _ = loop.train_and_evaluate(_config(fmnist_data_dir), workdir)
  return workdir, jax.device_get(state)


def _copy_with_steps(src, dst, steps):
  shutil.copytree(src, dst)
  for name in os.listdir(os.path.join(dst, 'checkpoints')):
    if name.isdigit() and int(name) not in steps:
      shutil.rmtree(os.path.join(dst, 'checkpoints', name))


def test_resume_equals_uninterrupted_run(finished_run, fmnist_data_dir, tmp_path):
  workdir, state_full = finished_run
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4']
  resumed_dir = str(tmp_path / 'resumed')
  _copy_with_steps(workdir, resumed_dir, steps={2})
  state_resumed, _ = loop.train_and_evaluate(_config(fmnist_data_dir), resumed_dir)
  state_resumed = jax.device_get(state_resumed)
  assert int(state_resumed.step) == 4
  for a, b in zip(jax.tree.leaves(state_full.params), jax.tree.leaves(state_resumed.params)):
    np.testing.assert_array_equal(a, b)
  # A checkpoint without its data-iterator position is refused rather than silently
  # restarting the data order.
  control_dir = str(tmp_path / 'control')
  _copy_with_steps(workdir, control_dir, steps={2})
  shutil.rmtree(os.path.join(control_dir, 'checkpoints', '2', 'data_iter'))
  with pytest.raises(checkpointing.CheckpointError):
    loop.train_and_evaluate(_config(fmnist_data_dir), control_dir)


def _train_losses(workdir):
  """{step: loss} from metrics.jsonl (later rows win: a resumed run re-logs its steps)."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  return {r['step']: r['train/loss'] for r in rows if 'train/loss' in r}


@pytest.mark.multi_device
def test_restore_onto_another_mesh_and_continue(finished_run, fmnist_data_dir, tmp_path):
  """Saved on 8 devices as data=8, continued on 4 devices as data=2 x fsdp=2."""
  workdir, state_full = finished_run
  resharded_dir = str(tmp_path / 'resharded')
  _copy_with_steps(workdir, resharded_dir, steps={2})
  os.remove(os.path.join(resharded_dir, 'metrics.jsonl'))
  c = _config(fmnist_data_dir)
  c.mesh.data, c.mesh.fsdp = 2, 2
  state, _ = loop.train_and_evaluate(c, resharded_dir, devices=jax.devices()[:4])
  kernel = state.params['encoder']['transformer']['block0']['mlp']['fc1']['kernel']
  assert kernel.sharding.mesh.shape == {'data': 2, 'fsdp': 2, 'tensor': 1}
  assert 'fsdp' in str(kernel.sharding.spec) and len(kernel.sharding.device_set) == 4
  assert int(state.step) == 4
  full, resharded = _train_losses(workdir), _train_losses(resharded_dir)
  assert sorted(resharded) == [3, 4]
  np.testing.assert_allclose([resharded[3], resharded[4]], [full[3], full[4]], rtol=1e-5)
  # Params within a small fraction of one Adam step (see test_train_step on rounding).
  for a, b in zip(jax.tree.leaves(state_full.params),
                  jax.tree.leaves(jax.device_get(state.params))):
    np.testing.assert_allclose(b, a, atol=1e-5, rtol=1e-4)


def test_corrupt_checkpoint_is_a_clear_error(finished_run, fmnist_data_dir, tmp_path):
  workdir, _ = finished_run
  broken = str(tmp_path / 'broken')
  _copy_with_steps(workdir, broken, steps={2, 4})
  state_dir = os.path.join(broken, 'checkpoints', '4', 'state')
  for root, _, files in os.walk(state_dir):
    for name in files:
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'\x00garbage')
  with pytest.raises(checkpointing.CheckpointError, match='step 4') as err:
    loop.train_and_evaluate(_config(fmnist_data_dir, num_steps=6), broken)
  assert 'checkpoints' in str(err.value)
  # Nothing already written was lost.
  assert sorted(os.listdir(os.path.join(broken, 'checkpoints'))) == ['2', '4']


def test_nan_loss_stops_and_keeps_last_good_checkpoint(finished_run, fmnist_data_dir,
                                                       tmp_path):
  workdir, _ = finished_run
  nan_dir = str(tmp_path / 'nan')
  _copy_with_steps(workdir, nan_dir, steps={2, 4})
  c = _config(fmnist_data_dir, num_steps=8)
  c.loss.l1_weight = float('nan')
  with pytest.raises(loop.NonFiniteLossError, match='step 5') as err:
    loop.train_and_evaluate(c, nan_dir)
  assert 'step 4' in str(err.value)
  assert sorted(os.listdir(os.path.join(nan_dir, 'checkpoints'))) == ['2', '4']


def test_missing_dataset_is_a_clear_error(tmp_path):
  c = _config(str(tmp_path / 'empty_tfds'))
  with pytest.raises((ValueError, FileNotFoundError), match='fashion_mnist_deb'):
    loop.train_and_evaluate(c, str(tmp_path / 'w'))
  c.data.name = 'no_such_dataset_xyz'
  with pytest.raises(ValueError, match='no_such_dataset_xyz'):
    loop.train_and_evaluate(c, str(tmp_path / 'w2'))


def test_eval_writes_metrics_and_grid(fmnist_data_dir, tmp_path):
  c = _config(fmnist_data_dir, num_steps=2, eval_every=0, eval_num_images=12)
  workdir = str(tmp_path / 'eval')
  _, results = loop.train_and_evaluate(c, workdir)
  assert results['eval/num_images'] == 12
  for k in ('eval/psnr', 'eval/ssim', 'eval/lpips', 'eval/codebook_usage'):
    assert np.isfinite(results[k]), k
  assert 0 < results['eval/codebook_usage'] <= 1
  assert os.path.getsize(os.path.join(workdir, 'images', 'recon_0000002.png')) > 100
  with open(os.path.join(workdir, 'eval_final.json')) as f:
    assert json.load(f)['eval/psnr'] == pytest.approx(results['eval/psnr'])
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  assert any('train/loss' in r for r in rows) and any('eval/psnr' in r for r in rows)


def test_trains_on_a_folder_of_user_images(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  folder = tmp_path / 'my_images' / 'nested'
  folder.mkdir(parents=True)
  rs = np.random.RandomState(0)
  for i in range(10):
    Image.fromarray((rs.rand(36, 44, 3) * 255).astype(np.uint8)).save(folder / f'{i}.png')
  (folder / 'broken.png').write_bytes(b'not a png')  # skipped and counted, not fatal
  c = _config('', num_steps=2, eval_every=0, eval_num_images=4)
  c.data.name = 'folder'
  c.data.folder = str(tmp_path / 'my_images')
  _, results = loop.train_and_evaluate(c, str(tmp_path / 'w'))
  assert results['eval/num_images'] == 4
  assert np.isfinite(results['eval/psnr'])
  with open(tmp_path / 'w' / 'classes.json') as f:
    assert json.load(f) == ['nested']  # label 0 is the class folder 'nested'
  with open(tmp_path / 'w' / 'metrics.jsonl') as f:
    skipped = [r['train/skipped_images'] for r in map(json.loads, f)
               if 'train/skipped_images' in r]
  assert skipped and skipped[-1] >= 1


def test_vae_tokenizer_trains_and_evaluates(fmnist_data_dir, tmp_path):
  """model.quantizer='vae' (models/vae.py): the KL term is trained and logged, training
  decodes a posterior sample (spec.train_args' noise), eval reconstructs the mean."""
  from sbt_jax.models import registry  # pylint: disable=g-import-not-at-top
  c = _config(fmnist_data_dir, num_steps=2, eval_every=0, eval_num_images=8)
  c.model.quantizer = 'vae'
  c.loss.kl_weight = 1e-3
  workdir = str(tmp_path / 'vae')
  _, results = loop.train_and_evaluate(c, workdir)
  assert np.isfinite(results['eval/psnr']) and 'eval/codebook_usage' not in results
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  kls = [r['train/kl'] for r in rows if 'train/kl' in r]
  assert kls and all(np.isfinite(kls)) and kls[0] > 0
  spec = registry.spec(c)
  (noise,) = spec.train_args(jax.random.key(0), 2, c)
  assert noise.shape == (2, c.model.num_global_tokens, c.model.token_dim)
  model = spec.build(c)
  x = np.zeros((2, 28, 28, 1), np.float32)
  params = jax.jit(model.init)(jax.random.key(0), x)
  mean = model.apply(params, x)[0]
  sampled = model.apply(params, x, noise)[0]
  assert not np.allclose(mean, sampled)  # the noise reaches the decoder
  np.testing.assert_array_equal(model.apply(params, x, noise * 0)[0], mean)

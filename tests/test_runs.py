"""The run store: params restored without a trainer (EMA when kept), old configs migrated."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import titok_fmnist
from sbt_jax import checkpointing
from sbt_jax import runs
from sbt_jax import sharding
from sbt_jax.models import registry
from sbt_jax.trainers import loop
from sbt_jax.trainers import tokenizer


def _save_run(workdir, config, ema: bool):
  """A checkpoint at step 3 whose params, EMA params and optimizer state all differ."""
  config.optim.ema_decay = 0.999 if ema else 0.0
  loop.save_config(config, workdir)
  state = jax.jit(tokenizer.TokenizerTask(config, mesh=None).init_state)(jax.random.key(0))
  params = jax.tree.map(lambda x: x + 1.0, state.params)
  ema_params = jax.tree.map(lambda x: x - 1.0, state.params) if ema else None
  state = state.replace(params=params, ema_params=ema_params)
  ckpt = checkpointing.Checkpointer(workdir, async_save=False, with_data_iter=False)
  ckpt.save(3, state)
  ckpt.wait()
  ckpt.close()
  return state


@pytest.mark.parametrize('ema', [True, False])
def test_restore_params_reads_ema_when_kept(tmp_path, ema):
  config = titok_fmnist.get_config('runlocal')
  workdir = str(tmp_path / 'run')
  state = _save_run(workdir, config, ema)
  mesh = sharding.make_mesh(config.mesh)
  tok = runs.restore_tokenizer(workdir, mesh)
  assert tok.step == 3 and isinstance(tok.spec, type(registry.spec(config)))
  want = state.ema_params if ema else state.params
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(tok.params),
               jax.device_get(want))
  # Placed on the mesh with the run's rules (fsdp shards 'embed' where it divides).
  leaf = tok.params['encoder']['patch_embed']['kernel']
  assert leaf.sharding.mesh.shape == mesh.shape
  with pytest.raises(checkpointing.CheckpointError, match=r'step 5 .*available: \[3\]'):
    runs.restore_tokenizer(workdir, mesh, step=5)


def test_old_config_keys_are_migrated(tmp_path):
  config = titok_fmnist.get_config('runlocal').to_dict()
  config['model']['num_latent_tokens'] = config['model'].pop('num_global_tokens')
  config['model']['num_latent_tokens'] = 6
  del config['loss']['perceptual'], config['loss']['convnext_weights']  # added later
  config['loss']['lpips_weight'] = config['loss'].pop('perceptual_weight')
  config['loss']['lpips_weight'] = 0.3
  (tmp_path / 'config.json').write_text(json.dumps(config))
  loaded = runs.load_config(str(tmp_path))
  assert loaded.model.num_global_tokens == 6 and 'num_latent_tokens' not in loaded.model
  assert (loaded.loss.perceptual_weight, loaded.loss.perceptual) == (0.3, 'lpips')
  assert 'lpips_weight' not in loaded.loss


def test_wrong_stage_and_missing_run(tmp_path):
  with pytest.raises(FileNotFoundError, match='config.json'):
    runs.load_config(str(tmp_path))
  config = titok_fmnist.get_config('runlocal')
  loop.save_config(config, str(tmp_path))
  with pytest.raises(ValueError, match="not of a stage='generator' run"):
    runs.restore_generator(str(tmp_path), sharding.make_mesh(config.mesh))
  with pytest.raises(checkpointing.CheckpointError, match='No checkpoints'):
    runs.restore_tokenizer(str(tmp_path), sharding.make_mesh(config.mesh))


def test_abstract_params_match_init():
  config = titok_fmnist.get_config('runlocal')
  model = registry.build_tokenizer(config)
  mesh = sharding.make_mesh(config.mesh)
  abstract = runs.abstract_params(
      lambda rng: model.init(rng, jnp.zeros((1, 28, 28, 1))), mesh, config.mesh.rules)
  params = tokenizer.TokenizerTask(config, mesh=None).init_state(jax.random.key(0)).params
  assert jax.tree.structure(abstract) == jax.tree.structure(params)
  for a, p in zip(jax.tree.leaves(abstract), jax.tree.leaves(params)):
    assert a.shape == p.shape and a.dtype == p.dtype

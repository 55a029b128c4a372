"""Decoder fine-tuning (issue 18, item 4): train.init_from starts a tokenizer run from a
finished one's params, train.trainable trains only some parameter groups and leaves every
other one (params and EMA params) bit-identical."""
import chex
import jax
import numpy as np
import optax
import pytest

from configs import titok_fmnist
from sbt_jax import checkpointing
from sbt_jax import config_defaults
from sbt_jax import sharding
from sbt_jax.trainers import loop
from sbt_jax.trainers import setup
from sbt_jax.trainers import tokenizer
from tests import test_train_step


def _config(**train):
  c = titok_fmnist.get_config('runlocal')
  c.loss.perceptual_weight = 0.0
  c.optim.warmup_steps = 1
  c.model.dead_code_restart_every = 1  # restarts would move a trainable codebook every step
  for k, v in train.items():
    c.train[k] = v
  config_defaults.validate(c)
  return c


def _train(config, steps):
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:1])
  task = tokenizer.TokenizerTask(config, mesh)
  prepared = setup.prepare(task, config, mesh)
  state = prepared.state
  start = jax.device_get(state)
  for i in range(steps):
    batch = sharding.global_batch(test_train_step._batch(8, seed=i), mesh)
    state, _ = prepared.step_fn(state, prepared.frozen, batch, jax.random.key(i))
  return start, jax.device_get(state)


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory):
  """The workdir of a (3-step) tokenizer run, and its final state."""
  c = _config()
  workdir = str(tmp_path_factory.mktemp('runs') / 'stage1')
  _, state = _train(c, 3)
  loop.save_config(c, workdir)
  ckpt = checkpointing.Checkpointer(workdir, async_save=False, with_data_iter=False)
  ckpt.save(3, jax.device_put(state))
  ckpt.wait()
  ckpt.close()
  return workdir, state


def test_decoder_finetuning_starts_from_the_run_and_freezes_the_rest(finished_run, tmp_path):
  workdir, stage1 = finished_run
  c = _config(init_from=workdir, trainable='decoder')
  start, end = _train(c, 3)
  # Starts from the finished run's EMA params (what it evaluated), EMA included.
  chex.assert_trees_all_equal(start.params, stage1.ema_params)
  chex.assert_trees_all_equal(start.ema_params, stage1.ema_params)
  for group in ('encoder', 'quantizer'):  # frozen: bit for bit, params and EMA, restarts on
    chex.assert_trees_all_equal(end.params[group], start.params[group])
    chex.assert_trees_all_equal(end.ema_params[group], start.ema_params[group])
  moved = optax.tree.norm(jax.tree.map(np.subtract, end.params['decoder'],
                                       start.params['decoder']))
  assert float(moved) > 0
  # Its checkpoint (the optimizer state has nothing for the frozen groups) restores exactly,
  # and a resumed run does not read init_from again.
  ckpt = checkpointing.Checkpointer(str(tmp_path / 'ft'), async_save=False,
                                    with_data_iter=False)
  ckpt.save(3, jax.device_put(end))
  ckpt.wait()
  mesh = sharding.make_mesh(c.mesh, jax.devices()[:1])
  task = tokenizer.TokenizerTask(c, mesh)
  chex.assert_trees_all_equal(jax.device_get(setup.restore_state(task, c, mesh, ckpt)), end)
  assert setup.prepare(task, c, mesh, checkpointer=ckpt).start_step == 3
  ckpt.close()


def test_bad_finetuning_settings_are_named(finished_run, tmp_path):
  workdir, _ = finished_run
  mesh = sharding.make_mesh(_config().mesh, jax.devices()[:1])
  with pytest.raises(ValueError, match="train.trainable='decodr': no parameter group 'decodr'"):
    tokenizer.TokenizerTask(_config(init_from=workdir, trainable='decodr'), mesh)
  with pytest.raises(ValueError, match="train.trainable='decoder' freezes .* train.init_from"):
    _config(trainable='decoder')
  c = _config(init_from=str(tmp_path / 'nothing'))
  with pytest.raises(FileNotFoundError, match='is not the workdir of an sbt_jax'):
    setup.prepare(tokenizer.TokenizerTask(c, mesh), c, mesh)
  c = _config(init_from=workdir)
  c.model.num_global_tokens = 6  # another parameter tree
  with pytest.raises(checkpointing.CheckpointError, match='different model/config'):
    setup.prepare(tokenizer.TokenizerTask(c, mesh), c, mesh)
  c = _config(init_from=workdir, trainable='decoder')
  c.stage = 'generator'
  with pytest.raises(ValueError, match='train.trainable freezes parts of a tokenizer'):
    config_defaults.validate(c)
  c = _config(init_from=workdir)
  c.stage, c.model.name, c.aligner.tokenizer_workdir = 'aligner', 'selfboottok', workdir
  with pytest.raises(ValueError, match="train.init_from starts a tokenizer or generator run"):
    config_defaults.validate(c)


def test_selfboottok_decoder_phase_with_the_adversarial_recipe(tmp_path):
  """configs/selfboottok_fmnist.py:finetune on a SelfBootTok: decoder and aligner train
  (compress + generate mode, discriminator on), every other group stays bit-identical."""
  from configs import selfboottok_fmnist  # pylint: disable=g-import-not-at-top
  c = selfboottok_fmnist.get_config('runlocal')
  _, stage1 = _train(c, 0)  # a fresh init stands for the finished run (one compile less)
  workdir = str(tmp_path / 'sbt')
  loop.save_config(c, workdir)
  ckpt = checkpointing.Checkpointer(workdir, async_save=False, with_data_iter=False)
  ckpt.save(2, jax.device_put(stage1))
  ckpt.wait()
  ckpt.close()
  tune = selfboottok_fmnist.get_config('finetune,runlocal')
  tune.train.init_from = workdir
  tune.adversarial.start_step = 0
  config_defaults.validate(tune)
  assert (tune.train.trainable, tune.loss.w_generate) == ('decoder,aligner', 1.0)
  start, end = _train(tune, 2)
  assert 'disc' in end.model_state
  for group in start.params:
    delta = optax.tree.norm(jax.tree.map(np.subtract, end.params[group], start.params[group]))
    if group in ('decoder', 'aligner'):
      assert float(delta) > 0, group
    else:
      chex.assert_trees_all_equal(end.params[group], start.params[group])
      chex.assert_trees_all_equal(end.ema_params[group], start.ema_params[group])

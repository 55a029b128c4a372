"""CRT: the ramp, a zero weight changes nothing, the term's gradient reaches the encoder, the
predictor trains with its own optimizer, 1 = 8 devices, the checkpoint holds the predictor
exactly and a CRT workdir restores for inference; SelfBootTok's global tokens get CRT too."""
import functools
import importlib

import chex
import jax
import numpy as np
import optax
import pytest

from configs import selfboottok_fmnist
from configs import titok_fmnist
from sbt_jax import config_defaults
from sbt_jax import inference
from sbt_jax.models import crt as crt_model
from sbt_jax.trainers import crt as crt_lib
from sbt_jax.trainers import setup
from sbt_jax.trainers import tokenizer
from tests import test_train_step


def _titok_config(**crt):
  c = titok_fmnist.get_config('runlocal,crt')
  c.loss.perceptual_weight = 0.0
  c.optim.warmup_steps = 1
  c.optim.learning_rate = 3e-3
  for k, v in crt.items():
    c.crt[k] = v
  return c


def test_weight_ramps_linearly_from_zero_to_lambda():
  c = _titok_config(weight=4.0, ramp_steps=1000)
  weights = [float(crt_model.ramp_weight(s, c.crt)) for s in (0, 250, 1000, 5000)]
  np.testing.assert_allclose(weights, [0.0, 1.0, 4.0, 4.0], rtol=1e-6)
  c.crt.ramp_steps = 0
  assert float(crt_model.ramp_weight(0, c.crt)) == 4.0
  c.crt.weight = -1.0
  with np.testing.assert_raises_regex(ValueError, r'crt\.weight'):
    config_defaults.validate(c)


def _off_config():
  c = _titok_config()
  c.crt.enabled = False
  return c


def _grad_fn(config):
  """jit(state -> (metrics, tokenizer grads, predictor grads)) on one fixed batch, through
  the train step's own path (crt_lib.value_and_grads)."""
  task = tokenizer.TokenizerTask(config, mesh=None)
  crt = crt_lib.maybe_create(config)
  loss_fn = functools.partial(tokenizer.tokenizer_loss, model=task.model, spec=task.spec,
                              config=config)
  batch = test_train_step._batch(8)  # what test_train_step._run_steps(batch_size=8) feeds

  def run(state):
    (_, (metrics, _)), grads, crt_grads = crt_lib.value_and_grads(
        loss_fn, state, crt, {'lpips': None}, batch)
    return metrics, grads, crt_grads
  return jax.jit(run)


@pytest.fixture(scope='module')
def grads_on_off():
  """(state, CRT-on outputs at lambda = 0 and at lambda = 4, CRT-off outputs): one compile
  serves both lambdas (lambda(step) is traced: step 0 and step ramp_steps)."""
  on = _titok_config(weight=4.0, ramp_steps=1000)
  off = _off_config()
  # The init the shared set-up (and so test_train_step._run_steps) uses.
  state = jax.jit(tokenizer.TokenizerTask(on, mesh=None).init_state)(setup.init_rng(on))
  run_on = _grad_fn(on)
  at_zero = run_on(state)
  at_four = run_on(state.replace(step=jax.numpy.asarray(1000, jax.numpy.int32)))
  no_crt = {k: v for k, v in state.model_state.items() if k != 'crt'}
  without = _grad_fn(off)(state.replace(model_state=no_crt))
  return state, at_zero, at_four, without


def test_zero_weight_changes_nothing(grads_on_off):
  _, (m0, g0, crt_g0), _, (m_off, g_off, crt_off) = grads_on_off
  assert crt_off is None
  # Without CRT the state (and so the checkpoint layout) is what it was before CRT existed.
  off_state = jax.eval_shape(tokenizer.TokenizerTask(_off_config(), mesh=None).init_state,
                             jax.random.key(0))
  assert set(off_state.model_state) == {'codebook_usage'}
  # lambda = 0: the tokenizer's loss and gradients are exactly those of a run without CRT,
  assert float(m0['crt_weight']) == 0.0 and float(m0['crt_loss']) > 0
  np.testing.assert_array_equal(m0['loss'], m_off['loss'])
  chex.assert_trees_all_equal(g0, g_off)
  # while the predictor still learns from its own loss.
  assert float(optax.tree.norm(crt_g0)) > 0


def test_crt_gradient_reaches_the_encoder(grads_on_off):
  _, (_, _, crt_g0), (m4, g4, crt_g4), (m_off, g_off, _) = grads_on_off
  assert float(m4['crt_weight']) == 4.0
  np.testing.assert_allclose(float(m4['loss']),
                             float(m_off['loss']) + 4.0 * float(m4['crt_loss']), rtol=1e-6)
  # The term's gradient flows through z into the encoder, and nowhere else.
  delta = jax.tree.map(lambda a, b: a - b, g4, g_off)
  enc = float(optax.tree.norm(delta['encoder']))
  assert np.isfinite(enc) and enc > 1e-6, enc
  assert float(optax.tree.norm(delta['decoder'])) == 0.0
  assert float(optax.tree.norm(delta['quantizer'])) == 0.0
  # The predictor's gradient is that of its own (unweighted) loss, whatever lambda is.
  chex.assert_trees_all_close(crt_g4, crt_g0, rtol=1e-5, atol=1e-7)
  assert set(g4) == {'encoder', 'quantizer', 'decoder'}  # predictor params live apart


def test_predictor_has_its_own_optimizer(grads_on_off):
  state, (_, _, crt_grads), _, _ = grads_on_off
  c = _titok_config()
  c.crt.optim.learning_rate = 0.0  # the tokenizer's optim.learning_rate stays 3e-3
  frozen_crt = crt_lib.CrtRegularizer(c)
  moving_crt = crt_lib.CrtRegularizer(_titok_config())
  s_frozen, s_moving = state.model_state['crt'], state.model_state['crt']
  frozen_update = jax.jit(frozen_crt.apply_gradients)
  moving_update = jax.jit(moving_crt.apply_gradients)
  for _ in range(2):  # the first step of a warmup schedule has learning rate 0
    s_frozen = frozen_update(s_frozen, crt_grads)
    s_moving = moving_update(s_moving, crt_grads)
  chex.assert_trees_all_equal(s_frozen['params'], state.model_state['crt']['params'])
  moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), s_moving['params'],
                       state.model_state['crt']['params'])
  assert min(jax.tree.leaves(moved)) > 0, moved


@pytest.mark.multi_device
def test_step_on_eight_devices_matches_one_device_and_restores(grads_on_off, tmp_path):
  """The loop's sharded step on data=4 x fsdp=2 against the 1-device jit of the fixture;
  then its state, checkpointed, restores exactly and serves inference."""
  _, (m0, _, crt_g0), _, _ = grads_on_off
  c = _titok_config(weight=4.0, ramp_steps=1000)
  c.mesh.data, c.mesh.fsdp = 4, 2
  state8, h8 = test_train_step._run_steps(c, jax.devices(), 2, batch_size=8)
  for name in ('loss', 'crt_loss', 'crt_weight'):
    np.testing.assert_allclose(h8[0][name], m0[name], rtol=1e-5, atol=1e-5, err_msg=name)
  np.testing.assert_allclose(h8[0]['crt_grad_norm'], optax.tree.norm(crt_g0), rtol=1e-5)
  np.testing.assert_allclose([m['crt_weight'] for m in h8], [0.0, 4.0 / 1000], rtol=1e-6)
  kernel = state8.model_state['crt']['params']['transformer']['block0']['mlp']['fc1']['kernel']
  assert 'fsdp' in str(kernel.sharding.spec)  # the predictor is sharded like the tokenizer
  assert int(state8.model_state['crt']['opt_state'][1][0].count) == 2  # (clip, adamw) -> adam's count

  # The checkpoint holds the predictor and its optimizer state, restored bit for bit (what
  # an exact resume needs; tests/test_loop.py covers the data order).
  workdir = str(tmp_path / 'w')
  restored = test_train_step.save_and_restore(c, state8, workdir, step=2)
  chex.assert_trees_all_equal(jax.device_get(restored), jax.device_get(state8))
  # Inference (and so the aligner and generator stages) restores a CRT-trained workdir.
  tok = inference.Tokenizer(workdir)
  images = test_train_step._batch(4)['image']
  ids = tok.encode(images)
  assert ids.shape == (4, c.model.num_global_tokens)
  decoded = tok.decode(ids)
  assert decoded.shape == images.shape and np.isfinite(decoded).all()


def test_selfboottok_trains_crt_on_its_global_tokens():
  c = selfboottok_fmnist.get_config('runlocal,crt')
  c.crt.ramp_steps = 0
  # CRT reads only the global tokens; the no-OT control keeps this test cheap (the OT path
  # is the same global quantizer: aux['z']).
  c.model.local_tokens = 'latent'
  state = jax.jit(tokenizer.TokenizerTask(c, mesh=None).init_state)(jax.random.key(0))
  metrics, grads, crt_grads = _grad_fn(c)(state)
  assert float(metrics['crt_weight']) == 4.0
  assert np.isfinite(float(metrics['crt_loss'])) and float(metrics['crt_loss']) > 0
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(grads))
  assert float(optax.tree.norm(grads['encoder'])) > 0
  assert float(optax.tree.norm(crt_grads)) > 0
  # The predictor reads the G global tokens (G - 1 positions), not the L local ones.
  assert state.model_state['crt']['params']['pos_embed'].shape[0] == c.model.num_global_tokens - 1


def test_prediction_of_token_i_sees_only_tokens_before_it():
  c = _titok_config()
  predictor = crt_model.build_predictor(c)
  z = jax.random.normal(jax.random.key(0), (2, c.model.num_global_tokens, c.model.token_dim))
  params = jax.jit(predictor.init)(jax.random.key(1), z)['params']  # eager init is slow
  apply = jax.jit(lambda z: predictor.apply({'params': params}, z))
  k = 4
  change_S = np.abs(apply(z) - apply(z.at[:, k].add(1.0))).max(axis=(0, 2))
  # Output i predicts token i + 1: outputs 0..k-1 never see token k; output k does.
  assert (change_S[:k] == 0).all() and change_S[k] > 0, change_S
  np.testing.assert_allclose(np.linalg.norm(apply(z), axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize('module,variant', [
    ('titok_fmnist', 'crt'), ('selfboottok_fmnist', 'titok,crt'), ('selfboottok_fmnist', 'crt'),
    ('titok_imagenet256', 'l32,crt'), ('selfboottok_imagenet256', 'crt')])
def test_crt_variants_validate_and_build(module, variant):
  c = importlib.import_module(f'configs.{module}').get_config(variant)
  config_defaults.validate(c)
  assert c.crt.enabled and c.crt.weight == 4.0 and c.crt.predictor.depth == 2
  crt = crt_lib.CrtRegularizer(c)
  boxed = jax.eval_shape(crt.boxed_state, jax.random.key(0))
  pos = boxed['params']['pos_embed'].value
  assert pos.shape == (c.model.num_global_tokens - 1, c.crt.predictor.width)


def test_bad_crt_config_is_named():
  c = titok_fmnist.get_config('crt')
  with pytest.raises(AttributeError, match='lambda_'):
    c.crt.lambda_ = 4.0
  c.stage = 'generator'
  c.generator.tokenizer_workdir = '/some/tokenizer'
  with pytest.raises(ValueError, match=r'crt\.enabled'):
    config_defaults.validate(c)
  c = titok_fmnist.get_config('crt')
  c.crt.predictor.num_heads = 3
  with pytest.raises(ValueError, match=r'crt\.predictor\.width'):
    config_defaults.validate(c)

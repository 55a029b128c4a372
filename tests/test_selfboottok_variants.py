"""Issue 20's SelfBootTok variants, each a config switch that changes what it should and
nothing else. model.align_targets='ema': the aligner's 2D targets come from the EMA
params (a BYOL/DINO-style teacher) instead of the same encoder under stop-gradient."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sbt_jax import config_defaults
from sbt_jax.models import registry
from sbt_jax.trainers import tokenizer
from tests import fakes
from tests import test_selfboottok


def _loss_fn(config):
  model, spec = registry.build_tokenizer(config), registry.spec(config)
  return model, functools.partial(tokenizer.tokenizer_loss, model=model, spec=spec,
                                  config=config)


@pytest.fixture(scope='module')
def setup():
  config = test_selfboottok._config(**{'loss.perceptual_weight': 0.0,
                                       'model.align_targets': 'ema'})
  model, loss_fn = _loss_fn(config)
  x = test_selfboottok._images(4)
  params = fakes.jit_init(model, jax.random.key(0), x)['params']
  # A teacher that differs from the student (as the EMA does after some steps).
  teacher = jax.tree.map(lambda p: p + 0.05 * jax.random.normal(jax.random.key(1), p.shape),
                         params)
  return model, loss_fn, params, teacher, {'image': x}


def test_ema_targets_change_only_the_alignment_term(setup):
  model, loss_fn, params, teacher, batch = setup
  metrics = jax.jit(lambda p, f: loss_fn(p, f, batch)[1][0])
  own = metrics(params, {})                              # 'self': f from the student
  same = metrics(params, {tokenizer.TEACHER: params})    # a teacher equal to the student
  ema = metrics(params, {tokenizer.TEACHER: teacher})
  for name in own:
    np.testing.assert_allclose(same[name], own[name], rtol=1e-6, atol=1e-6, err_msg=name)
  changed = {n for n in own if not np.allclose(ema[n], own[n], rtol=1e-6, atol=1e-6)}
  assert changed == {'align_loss', 'loss'}, changed
  f_teacher = model.apply({'params': teacher}, batch['image'], method='target_features')
  f_hat = model.apply({'params': params}, batch['image'])[1]['f_hat']
  from sbt_jax.losses import terms  # pylint: disable=g-import-not-at-top
  np.testing.assert_allclose(ema['align_loss'], terms.alignment_loss(f_hat, f_teacher),
                             rtol=1e-5)


def test_the_teacher_never_receives_gradients(setup):
  _, loss_fn, params, teacher, batch = setup
  grad_teacher = jax.jit(jax.grad(
      lambda t: loss_fn(params, {tokenizer.TEACHER: t}, batch)[0]))(teacher)
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grad_teacher))
  # The student's gradient does see the teacher's targets (through align_loss).
  grad = jax.jit(jax.grad(lambda p, f: loss_fn(p, f, batch)[0]))
  g_own, g_ema = grad(params, {}), grad(params, {tokenizer.TEACHER: teacher})
  aligner_diff = max(float(jnp.abs(a - b).max()) for a, b in zip(
      jax.tree.leaves(g_own['aligner']), jax.tree.leaves(g_ema['aligner'])))
  assert aligner_diff > 0


def test_train_step_feeds_the_ema_params_as_teacher(setup):
  """The step's align_loss is the one against state.ema_params' targets, and the teacher's
  own update is the EMA rule (no gradient step): ema' = ema + (1 - decay_t) (params' - ema)."""
  from sbt_jax import sharding  # pylint: disable=g-import-not-at-top
  from sbt_jax.trainers import setup as setup_lib  # pylint: disable=g-import-not-at-top
  from sbt_jax.trainers import state as state_lib  # pylint: disable=g-import-not-at-top
  _, loss_fn, _, _, batch = setup
  config = test_selfboottok._config(**{'loss.perceptual_weight': 0.0,
                                       'model.align_targets': 'ema'})
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:1])
  task = tokenizer.TokenizerTask(config, mesh)
  prepared = setup_lib.prepare(task, config, mesh)
  # A teacher that differs from the student (fresh EMA params equal the params).
  state = prepared.state.replace(ema_params=jax.tree.map(
      lambda p: p + 0.05 * jax.random.normal(jax.random.key(1), p.shape),
      prepared.state.params))
  before = jax.device_get(state)
  global_batch = sharding.global_batch({'image': np.asarray(batch['image'])}, mesh)
  after, metrics = prepared.step_fn(state, prepared.frozen, global_batch, jax.random.key(0))
  after = jax.device_get(after)
  expect = jax.jit(lambda p, t: loss_fn(p, {tokenizer.TEACHER: t}, batch)[1][0])(
      before.params, before.ema_params)
  student = jax.jit(lambda p: loss_fn(p, {}, batch)[1][0])(before.params)
  np.testing.assert_allclose(metrics['align_loss'], expect['align_loss'], rtol=1e-5)
  assert abs(float(metrics['align_loss']) - float(student['align_loss'])) > 1e-4
  rate = 1.0 - float(state_lib.ema_decay_at(before.step, config.optim.ema_decay))
  expected = jax.tree.map(lambda e, p: e + rate * (p - e), before.ema_params, after.params)
  for a, b in zip(jax.tree.leaves(after.ema_params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_ema_targets_need_the_ema_and_a_selfboottok():
  c = test_selfboottok._config(**{'model.align_targets': 'ema', 'optim.ema_decay': 0.0})
  with pytest.raises(ValueError, match='optim.ema_decay'):
    config_defaults.validate(c)
  c = test_selfboottok._config(**{'model.align_targets': 'teacher'})
  with pytest.raises(ValueError, match='model.align_targets'):
    config_defaults.validate(c)
  from configs import titok_fmnist  # pylint: disable=g-import-not-at-top
  c = titok_fmnist.get_config('runlocal')
  c.model.align_targets = 'ema'
  with pytest.raises(ValueError, match='no align_loss'):
    config_defaults.validate(c)


# --- model.generate_local='soft' -------------------------------------------------------------


@pytest.fixture(scope='module')
def soft_and_ids_models():
  config = test_selfboottok._config(**{'loss.w_generate': 1.0})
  x = test_selfboottok._images(4)
  ids_model = registry.build_tokenizer(config)
  config.model.generate_local = 'soft'
  soft_model = registry.build_tokenizer(config)
  params = fakes.jit_init(ids_model, jax.random.key(0), x)['params']
  return ids_model, soft_model, params, x


def test_soft_local_tokens_are_a_function_of_the_global_ids_only(soft_and_ids_models):
  """Generate mode decodes softmax(aligner logits) @ codebook: no sampling (rng and
  temperature change nothing), the same image for the same global ids."""
  _, soft, params, x = soft_and_ids_models
  decode = jax.jit(lambda g, rng, t: soft.apply({'params': params}, g, rng, t,
                                                method='decode_generate')[0],
                   static_argnums=2)
  g, _ = soft.apply({'params': params}, x, method='encode')
  image = decode(g, jax.random.key(0), 0.0)
  np.testing.assert_array_equal(decode(g, jax.random.key(5), 1.0), image)
  np.testing.assert_array_equal(decode(jnp.concatenate([g[1:], g[:1]]), jax.random.key(0),
                                       0.0)[-1], image[0])  # per image, order-free

  def by_hand(m):
    logits = m.local_logits(g)
    q = jax.nn.softmax(logits) @ m.local_quantizer.normalized_codebook()
    g_q = m.quantizer.lookup(g)
    return m._decode(g_q, q, None)  # pylint: disable=protected-access
  np.testing.assert_allclose(image, soft.apply({'params': params}, method=by_hand),
                             atol=1e-5)


def test_soft_local_tokens_change_only_generate_mode(soft_and_ids_models):
  ids_model, soft, params, x = soft_and_ids_models
  run = lambda m, method, *a: jax.jit(  # pylint: disable=unnecessary-lambda-assignment
      lambda p, *b: m.apply({'params': p}, *b, method=method))(params, *a)
  g_ids, l_ids = run(ids_model, 'encode', x)
  g_soft, l_soft = run(soft, 'encode', x)
  np.testing.assert_array_equal(g_ids, g_soft)
  np.testing.assert_array_equal(l_ids, l_soft)
  np.testing.assert_array_equal(run(ids_model, 'decode_compress', g_ids, l_ids),
                                run(soft, 'decode_compress', g_ids, l_ids))
  # Training outputs: everything equal but the generate-mode reconstruction.
  (r_ids, aux_ids), (r_soft, aux_soft) = (jax.jit(m.apply)({'params': params}, x)
                                          for m in (ids_model, soft))
  np.testing.assert_array_equal(r_ids, r_soft)
  for key in aux_ids:
    if key != 'recon_generate':
      np.testing.assert_array_equal(aux_ids[key], aux_soft[key], err_msg=key)
  assert float(jnp.abs(aux_ids['recon_generate'] - aux_soft['recon_generate']).max()) > 0
  # ... and the soft one is what decode_generate returns (trained on what it decodes).
  generated = run(soft, 'decode_generate', g_soft)[0]
  np.testing.assert_allclose(aux_soft['recon_generate'], generated, atol=1e-5)

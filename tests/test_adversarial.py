"""The discriminator (models/discriminator.py), the adversarial terms (losses/adversarial.py)
on hand-computed values, and the recipe in the tokenizer's train step
(trainers/adversarial.py) of issue 18."""
import functools
import pathlib

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import titok_fmnist
from sbt_jax import config_defaults
from sbt_jax.losses import adversarial
from sbt_jax.models import discriminator
from sbt_jax.trainers import adversarial as adv_lib
from sbt_jax.trainers import setup
from sbt_jax.trainers import tokenizer
from tests import fakes
from tests import test_train_step


def test_hinge_and_generator_terms_on_hand_computed_logits():
  real = jnp.array([2.0, 0.5, -1.0, 0.0])  # relu(1 - r) = 0, 0.5, 2, 1 -> mean 0.875
  fake = jnp.array([-2.0, 0.5, 1.0, -0.5])  # relu(1 + f) = 0, 1.5, 2, 0.5 -> mean 1.0
  np.testing.assert_allclose(adversarial.hinge_discriminator_loss(real, fake), 0.9375)
  np.testing.assert_allclose(adversarial.generator_adversarial_loss(fake), 0.25)  # -(-0.25)
  np.testing.assert_allclose(adversarial.generator_adversarial_loss(real), -0.375)


def test_lecam_and_its_ema_on_hand_computed_logits():
  real, fake = jnp.array([1.0, 3.0]), jnp.array([-1.0, 0.0])  # means 2.0 and -0.5
  ema = adversarial.LecamEma(real=jnp.float32(0.5), fake=jnp.float32(1.0))
  # relu(2.0 - 1.0)^2 + relu(0.5 - -0.5)^2 = 1 + 1
  np.testing.assert_allclose(adversarial.lecam_loss(real, fake, ema), 2.0)
  ema2 = adversarial.LecamEma(real=jnp.float32(-3.0), fake=jnp.float32(2.5))
  np.testing.assert_allclose(adversarial.lecam_loss(real, fake, ema2), 0.0)  # both relu'd
  new = ema.update(real, fake, decay=0.9)
  np.testing.assert_allclose([new.real, new.fake], [0.5 * 0.9 + 2.0 * 0.1,
                                                    1.0 * 0.9 - 0.5 * 0.1], rtol=1e-6)
  zeros = adversarial.LecamEma.zeros()
  assert float(zeros.real) == 0.0 and float(zeros.fake) == 0.0


def test_before_the_start_step_everything_is_exactly_zero():
  real, fake = jnp.array([0.3, -0.2]), jnp.array([0.1, 0.4])
  ema = adversarial.LecamEma(real=jnp.float32(1.0), fake=jnp.float32(-1.0))

  def loss(real, fake, step):
    return adversarial.discriminator_objective(real, fake, ema, step=step, start_step=10,
                                               factor=1.0, lecam_weight=0.001)[0]

  for step in (0, 9):
    assert float(loss(real, fake, step)) == 0.0
    grads = jax.grad(loss, argnums=(0, 1))(real, fake, step)
    assert all(not np.any(np.asarray(g)) for g in grads)
  expected = (adversarial.hinge_discriminator_loss(real, fake)
              + 0.001 * adversarial.lecam_loss(real, fake, ema))
  np.testing.assert_allclose(loss(real, fake, 10), expected, rtol=1e-6)
  # Traced steps (inside jit) behave the same.
  np.testing.assert_allclose(jax.jit(loss)(real, fake, jnp.int32(9)), 0.0)
  np.testing.assert_allclose(float(adversarial.factor_at(jnp.int32(12), 10, 0.5)), 0.5)
  _, metrics = adversarial.discriminator_objective(real, fake, ema, step=10, start_step=10,
                                                   factor=1.0, lecam_weight=0.0)
  assert float(metrics['disc/lecam']) == 0.0 and float(metrics['disc/wins']) == 0.0


def test_adaptive_weight_on_hand_computed_gradients():
  g_rec, g_gen = jnp.array([[3.0, 4.0]]), jnp.array([[0.3, 0.4]])  # norms 5 and 0.5
  np.testing.assert_allclose(adversarial.adaptive_weight(g_rec, g_gen), 5 / (0.5 + 1e-4),
                             rtol=1e-6)
  np.testing.assert_allclose(adversarial.adaptive_weight(g_rec, 0 * g_gen), 1e4)  # clipped


def test_adaptive_weight_balances_the_gradients_at_the_reconstruction():
  """with_generator_term on a stand-in tokenizer whose reconstruction is its only param:
  the logged adaptive weight is ||d rec/d recon|| / (||d gen/d recon|| + 1e-4) and it is a
  constant (the gradient is rec's plus adaptive * weight * gen's)."""
  c = _config()
  c.adversarial.adaptive_weight = True
  c.loss.l1_weight, c.loss.l2_weight = 0.0, 1.0
  adv = adv_lib.AdversarialTrainer(c)
  rs = np.random.RandomState(0)
  x = jnp.asarray(rs.uniform(-1, 1, (2, 28, 28, 1)), jnp.float32)
  recon = jnp.asarray(rs.uniform(-1, 1, (2, 28, 28, 1)), jnp.float32)
  disc = nn.meta.unbox(adv.boxed_state(jax.random.key(0), x))['params']
  rec_of = lambda r: jnp.mean(jnp.square(r - x))  # pylint: disable=unnecessary-lambda-assignment
  gen_of = lambda r: -jnp.mean(adv.logits(disc, r))  # pylint: disable=unnecessary-lambda-assignment
  loss_fn = lambda p, frozen, batch, rng: (rec_of(p), ({}, {'recon': p}))  # pylint: disable=unnecessary-lambda-assignment
  total = adv.with_generator_term(loss_fn, disc, step=jnp.int32(5))
  grad, (metrics, _) = jax.jit(jax.grad(lambda r: total(r, {}, {'image': x}, None),
                                        has_aux=True))(recon)
  g_rec, g_gen = jax.grad(rec_of)(recon), jax.grad(gen_of)(recon)
  expected = float(jnp.linalg.norm(g_rec) / (jnp.linalg.norm(g_gen) + 1e-4))
  np.testing.assert_allclose(metrics['disc/adaptive_weight'], expected, rtol=1e-5)
  np.testing.assert_allclose(metrics['disc/weight'], 0.1 * expected, rtol=1e-5)
  np.testing.assert_allclose(grad, g_rec + 0.1 * expected * g_gen, rtol=1e-4, atol=1e-9)


def test_blur_downsample_matches_a_hand_written_depthwise_conv():
  rs = np.random.RandomState(0)
  x = rs.randn(2, 8, 6, 3).astype(np.float32)
  for taps in discriminator.BLUR_TAPS.values():
    out = np.asarray(discriminator.blur_downsample(jnp.asarray(x), taps))
    n = len(taps)
    # 'SAME' padding of a 4-tap stride-2 window (1 each side here) for every kernel size,
    # as the reference: 5 taps lose one more row and column.
    assert out.shape == ((2, 4, 3, 3) if n < 5 else (2, 3, 2, 3)), (taps, out.shape)
    k = np.outer(taps, taps).astype(np.float64)
    k /= k.sum()
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = np.zeros_like(out)
    for i in range(out.shape[1]):
      for j in range(out.shape[2]):
        window = padded[:, 2 * i:2 * i + n, 2 * j:2 * j + n, :]
        want[:, i, j] = np.einsum('bhwc,hw->bc', window, k)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('size', [4, 5, 16, 32, 20])
def test_adaptive_max_pool_matches_pytorchs_windows(size):
  x = np.random.RandomState(size).randn(2, size, size, 3).astype(np.float32)
  out = np.asarray(discriminator.adaptive_max_pool(jnp.asarray(x), 16))
  assert out.shape == (2, 16, 16, 3)
  for i in range(16):
    r0, r1 = (i * size) // 16, -(-((i + 1) * size) // 16)
    for j in range(16):
      c0, c1 = (j * size) // 16, -(-((j + 1) * size) // 16)
      np.testing.assert_array_equal(out[:, i, j], x[:, r0:r1, c0:c1].max(axis=(1, 2)))


def test_discriminator_gives_patch_logits_and_checks_its_size():
  d = discriminator.NLayerDiscriminator(hidden_channels=8, num_stages=2, num_groups=4)
  x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3), minval=-1, maxval=1)
  variables = fakes.jit_init(d, jax.random.key(1), x)
  params = nn.meta.unbox(variables)['params']
  logits = d.apply({'params': params}, x)
  assert logits.shape == (2, 16, 16, 1) and logits.dtype == jnp.float32
  assert params['stage1_conv']['kernel'].shape == (3, 3, 8, 16)
  assert params['to_logits']['kernel'].shape == (5, 5, 16, 1)
  # Each image's logits depend on that image only (GroupNorm is per example).
  other = d.apply({'params': params}, x.at[1].set(0.0))
  np.testing.assert_allclose(np.asarray(other[0]), np.asarray(logits[0]), rtol=1e-5,
                             atol=1e-6)
  assert not np.allclose(np.asarray(other[1]), np.asarray(logits[1]))
  assert discriminator.check_size(8, 2, 4, 4) is None
  assert 'discriminator.hidden_channels=12' in discriminator.check_size(12, 2, 4, 8)
  assert 'discriminator.blur_taps=6' in discriminator.check_size(8, 2, 6, 4)
  assert 'discriminator.num_stages=0' in discriminator.check_size(8, 0, 4, 4)


# --- The recipe in the tokenizer's train step (trainers/adversarial.py). ---


def _config(start_step=0, **mesh):
  c = titok_fmnist.get_config('runlocal')
  c.loss.perceptual_weight = 0.0
  c.optim.warmup_steps = c.adversarial.optim.warmup_steps = 1
  a = c.adversarial
  a.enabled, a.start_step, a.lecam_weight = True, start_step, 0.5
  a.discriminator.hidden_channels, a.discriminator.num_stages = 8, 2
  a.discriminator.num_groups = 4
  for k, v in mesh.items():
    c.mesh[k] = v
  config_defaults.validate(c)
  return c


def _one_step(config, state=None, step_fn=None):
  """(state before, state after one jitted train step, metrics) on test_train_step's batch;
  step_fn: a jitted train step of `config` to reuse (one compile for several steps)."""
  task = tokenizer.TokenizerTask(config, mesh=None)
  if state is None:
    state = jax.jit(task.init_state)(setup.init_rng(config))
  step_fn = step_fn or jax.jit(task.train_step)
  after, metrics = step_fn(state, {'lpips': None}, test_train_step._batch(8),
                           jax.random.key(0))
  return state, after, metrics


def test_before_the_start_step_the_discriminator_and_the_tokenizer_update_are_untouched():
  c = _config(start_step=5)
  before, after, metrics = _one_step(c)
  chex.assert_trees_all_equal(after.model_state[adv_lib.KEY],
                              before.model_state[adv_lib.KEY])
  assert float(metrics['disc/weight']) == 0.0 and float(metrics['disc/loss']) == 0.0
  assert float(metrics['disc/grad_norm']) == 0.0
  # The tokenizer's step is the one a run without the discriminator takes.
  off = _config(start_step=5)
  off.adversarial.enabled = False
  plain = before.replace(model_state={k: v for k, v in before.model_state.items()
                                      if k != adv_lib.KEY})
  _, after_off, metrics_off = _one_step(off, plain)
  np.testing.assert_array_equal(metrics['loss'], metrics_off['loss'])
  chex.assert_trees_all_close(after.params, after_off.params, rtol=0, atol=1e-7)


def test_each_side_moves_only_its_own_params():
  c = _config(start_step=0)
  task = tokenizer.TokenizerTask(c, mesh=None)
  state = jax.jit(task.init_state)(setup.init_rng(c))
  adv, disc = task.adv, state.model_state[adv_lib.KEY]
  batch = test_train_step._batch(8)
  loss_fn = functools.partial(tokenizer.tokenizer_loss, model=task.model, spec=task.spec,
                              config=c)
  # Generator side: the term depends on the discriminator, which gets no gradient from it.
  total = lambda p, d: adv.with_generator_term(loss_fn, d, 0)(p, {'lpips': None}, batch)[0]  # pylint: disable=unnecessary-lambda-assignment
  g_params, g_disc = jax.jit(jax.grad(total, argnums=(0, 1)))(state.params, disc['params'])
  assert all(not np.any(np.asarray(g)) for g in jax.tree.leaves(g_disc))
  assert float(optax.tree.norm(g_params['decoder'])) > 0
  # The term is in the loss: -mean D(recon), weighted.
  _, (metrics, aux) = jax.jit(lambda p, d: adv.with_generator_term(loss_fn, d, 0)(
      p, {'lpips': None}, batch))(state.params, disc['params'])
  plain, _ = jax.jit(lambda p: loss_fn(p, {'lpips': None}, batch))(state.params)
  want = plain + 0.1 * -jnp.mean(jax.jit(adv.logits)(disc['params'], aux['recon']))
  np.testing.assert_allclose(metrics['loss'], want, rtol=1e-6)
  # Discriminator side: its update does not differentiate into the reconstruction.
  moved = lambda r: optax.tree.norm(adv.update(disc, batch['image'], r, 0)[0]['params'])  # pylint: disable=unnecessary-lambda-assignment
  g_recon = jax.jit(jax.grad(moved))(aux['recon'])
  assert not np.any(np.asarray(g_recon))
  # Full steps (the first has learning rate 0, warmup): the discriminator and both LeCam
  # EMAs move; the logged terms are there.
  step_fn = jax.jit(task.train_step)
  _, after, _ = _one_step(c, state, step_fn)
  _, after, metrics = _one_step(c, after, step_fn)
  new = after.model_state[adv_lib.KEY]
  assert float(optax.tree.norm(jax.tree.map(jnp.subtract, new['params'],
                                            disc['params']))) > 0
  assert float(new['lecam_real']) != 0.0 and float(new['lecam_fake']) != 0.0
  for name in ('disc/loss', 'disc/hinge', 'disc/lecam', 'disc/logits_real',
               'disc/logits_fake', 'disc/wins', 'disc/weight', 'disc/generator_term'):
    assert np.isfinite(float(metrics[name])), name
  assert float(metrics['disc/weight']) == pytest.approx(0.1)


@pytest.mark.multi_device
def test_eight_devices_match_one_and_the_discriminator_state_restores(tmp_path):
  c1 = _config(data=1, fsdp=1)
  state1, hist1 = test_train_step._run_steps(c1, jax.devices()[:1], 2, batch_size=8)
  c8 = _config(data=4, fsdp=2)
  state8, hist8 = test_train_step._run_steps(c8, jax.devices(), 2, batch_size=8)
  for name in ('loss', 'disc/loss', 'disc/logits_real', 'disc/logits_fake'):
    np.testing.assert_allclose([h[name] for h in hist8], [h[name] for h in hist1],
                               rtol=1e-5, atol=1e-6, err_msg=name)
  # Params and LeCam EMAs; not Adam's moments, whose near-zero gradient entries differ by
  # summation order (1e-5 of gradients ~1e-2). Adam divides by their size, so a param can
  # move a few 1e-6 differently (seen: 2.5e-6 in 1 of 1,152); a sharding error moves
  # updates by the learning rate (1e-4 here) or more.
  d8, d1 = (jax.device_get(s.model_state[adv_lib.KEY]) for s in (state8, state1))
  for key in ('params', 'lecam_real', 'lecam_fake'):
    chex.assert_trees_all_close(d8[key], d1[key], rtol=1e-5, atol=1e-5)
  kernel = state8.model_state[adv_lib.KEY]['params']['stage1_conv']['kernel']
  assert 'fsdp' in str(kernel.sharding.spec)  # sharded by the same rules as the tokenizer
  restored = test_train_step.save_and_restore(c8, state8, str(tmp_path / 'w'), step=2)
  chex.assert_trees_all_equal(restored, jax.device_get(state8))


def test_bad_adversarial_settings_name_the_field():
  c = _config()
  c.adversarial.discriminator.num_groups = 3
  with pytest.raises(ValueError, match='adversarial.discriminator.hidden_channels=8'):
    config_defaults.validate(c)
  c = _config()
  c.adversarial.lecam_ema_decay = 1.0
  with pytest.raises(ValueError, match='adversarial.lecam_ema_decay=1.0'):
    config_defaults.validate(c)
  c = _config()
  c.adversarial.weight = -0.1
  with pytest.raises(ValueError, match='adversarial.weight=-0.1'):
    config_defaults.validate(c)


def test_discriminator_matches_the_reference_logits():
  """tests/golden/discriminator_reference.npz: bytedance/1d-tokenizer's NLayerDiscriminator
  (hidden 32, 2 stages) with torch's init, its inputs and logits, written by
  tests/golden/reference_discriminator.py; loaded with params_from_torch."""
  golden = np.load(pathlib.Path(__file__).parent / 'golden' / 'discriminator_reference.npz')
  state_dict = {k[3:]: golden[k] for k in golden.files if k.startswith('sd/')}
  np.testing.assert_allclose(state_dict['blocks.0.1.kernel'][0, 0],
                             np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0)  # our 4 taps
  params = discriminator.params_from_torch(state_dict, num_stages=2)
  d = discriminator.NLayerDiscriminator(hidden_channels=32, num_stages=2)
  shapes = jax.tree.map(np.shape, nn.meta.unbox(
      fakes.jit_init(d, jax.random.key(0), jnp.zeros((1, 32, 32, 3))))['params'])
  assert jax.tree.map(np.shape, params) == shapes
  for size in (32, 40):  # repeated and overlapping pool windows
    logits = d.apply({'params': params}, jnp.asarray(golden[f'input_{size}']))
    np.testing.assert_allclose(np.asarray(logits), golden[f'logits_{size}'], rtol=1e-4,
                               atol=1e-5, err_msg=str(size))
  del state_dict['to_logits.2.bias']
  with pytest.raises(ValueError, match="no 'to_logits.2.bias' in the state dict"):
    discriminator.params_from_torch(state_dict, num_stages=2)

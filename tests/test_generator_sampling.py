"""Generator model and samplers on a random tiny transformer: schedules, MaskGIT decoding,
guidance, AR KV cache, config validation. No data or tokenizer needed."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import generator_fmnist
from sbt_jax import config_defaults
from sbt_jax.models import generator as generator_lib
from sbt_jax.models import vit
from sbt_jax.sampling import autoregressive
from sbt_jax.sampling import generate
from sbt_jax.sampling import maskgit
from sbt_jax.sampling import schedules
from sbt_jax.trainers import generator as generator_trainer
from tests import fakes

V, G, C = 16, 6, 4


def _model(kind):
  g = generator_fmnist.get_config('runlocal' + (',ar' if kind == 'ar' else '')).generator
  g.num_classes = C
  g.transformer.depth = 2
  g.attention_impl = 'xla'  # compiles faster than the CPU default; same math
  model = generator_lib.build_generator(g, V, G)
  length = G + 1 if kind == 'maskgit' else G
  params = fakes.jit_init(model, jax.random.key(0), jnp.zeros((1, length), jnp.int32))['params']
  # Larger-than-init weights so logits differ clearly between inputs.
  params = jax.tree.map(lambda p: p * 3.0, params)
  return model, params, g


@pytest.fixture(scope='module')
def maskgit_model():
  return _model('maskgit')


@pytest.fixture(scope='module')
def ar_model():
  return _model('ar')


def test_mask_schedule_values():
  u = jnp.array([0.0, 0.5, 1.0])
  np.testing.assert_allclose(schedules.mask_ratio(u, 'arccos'), [1.0, 2 / 3, 0.0], atol=1e-6)
  np.testing.assert_allclose(schedules.mask_ratio(u, 'cosine'),
                             [1.0, math.cos(math.pi / 4), 0.0], atol=1e-6)
  np.testing.assert_allclose(schedules.mask_ratio(u, 'linear'), [1.0, 0.5, 0.0], atol=1e-6)
  # arccos masks more than linear at every inner point (it favours hard, mostly-masked inputs).
  inner = jnp.linspace(0.05, 0.95, 19)
  assert np.all(schedules.mask_ratio(inner, 'arccos') > schedules.mask_ratio(inner, 'linear'))
  # Training masks ceil(G * r(u)) positions, at least one, per example.
  rng = jax.random.key(3)
  mask_BxG = generator_trainer.random_mask(rng, 256, 16, 'arccos')
  u_B = jax.random.uniform(jax.random.split(rng)[0], (256,))
  expected = np.clip(np.ceil(np.asarray(schedules.mask_ratio(u_B, 'arccos')) * 16), 1, 16)
  np.testing.assert_array_equal(np.asarray(mask_BxG).sum(1), expected)
  # Guidance schedules at t = step / num_steps.
  t = jnp.array([0.0, 0.5, 1.0])
  np.testing.assert_allclose(schedules.guidance_weight(t, 'constant'), [1, 1, 1])
  np.testing.assert_allclose(schedules.guidance_weight(t, 'linear'), [0, 0.5, 1])
  np.testing.assert_allclose(schedules.guidance_weight(t, 'power-cosine', 1.0), [0, 0.5, 1],
                             atol=1e-6)
  np.testing.assert_allclose(schedules.guidance_weight(0.5, 'power-cosine', 2.75),
                             (1 - math.cos(math.pi * 0.5 ** 2.75)) / 2, atol=1e-6)


@pytest.mark.parametrize('num_steps,schedule,guidance', [
    (1, 'arccos', 0.0), (G + 3, 'linear', 1.0)])
def test_maskgit_sampler_leaves_no_mask_token(maskgit_model, num_steps, schedule, guidance):
  model, params, _ = maskgit_model
  labels = jnp.arange(8) % C
  state = jax.jit(lambda p, l, r: maskgit.sample(
      p, l, r, model=model, num_steps=num_steps, mask_schedule=schedule,
      guidance_scale=guidance))(params, labels, jax.random.key(1))
  ids = np.asarray(state.ids_BxG)
  assert ids.shape == (8, G)
  assert not np.any(ids == generator_lib.mask_id(V))
  assert ids.min() >= 0 and ids.max() < V
  assert int(state.step) == num_steps


@pytest.mark.parametrize('schedule', ['arccos', 'cosine'])
def test_maskgit_fixes_tokens_per_the_schedule(maskgit_model, schedule):
  """After step k of T, floor(G * r((k + 1) / T)) ids stay masked (>= 1 fixed per step);
  ids once fixed never change."""
  model, params, _ = maskgit_model
  num_steps = 4
  step_fn = jax.jit(maskgit.make_step(params, jnp.arange(4) % C, model=model,
                                      num_steps=num_steps, mask_schedule=schedule))
  state = maskgit.init_state(4, G, V, jax.random.key(2))
  mask = generator_lib.mask_id(V)
  remaining = G
  for k in range(num_steps):
    before = np.asarray(state.ids_BxG)
    state = step_fn(state)
    ids = np.asarray(state.ids_BxG)
    r = float(schedules.mask_ratio((k + 1) / num_steps, schedule))
    expected = 0 if k == num_steps - 1 else min(int(np.floor(G * r)), remaining - 1)
    np.testing.assert_array_equal((ids == mask).sum(1), expected)
    fixed = before != mask
    np.testing.assert_array_equal(ids[fixed], before[fixed])
    remaining = expected


def test_sampler_is_one_lax_loop(maskgit_model):
  """No Python loop per step: the traced program does not grow with the number of steps."""
  model, params, g = maskgit_model

  def program(num_steps):
    g.sampling.num_steps = num_steps
    sample = generate.ids_sampler(model, g)
    return jax.make_jaxpr(sample)(params, jnp.zeros((2,), jnp.int32), jax.random.key(0))
  short, long = program(2), program(8)
  assert {'while', 'scan'} & {e.primitive.name for e in long.jaxpr.eqns}
  assert str(long).count('dot_general') == str(short).count('dot_general') > 0


def test_guidance_zero_first_step_logits_equal_conditional(maskgit_model):
  model, params, _ = maskgit_model
  labels = jnp.array([0, 1, 2, 3])
  all_masked = jnp.full((4, G), generator_lib.mask_id(V), jnp.int32)

  @jax.jit
  def logits(labels_B):
    return model.apply({'params': params},
                       generator_lib.maskgit_inputs(all_masked, labels_B, V))[:, 1:]
  cond = logits(labels)
  uncond = logits(jnp.full_like(labels, C))
  assert not np.allclose(cond, uncond, atol=1e-3)  # The class token matters.
  for scale, expected in ((0.0, cond), (2.0, cond + 2.0 * (cond - uncond))):
    state = jax.jit(lambda p, l, r, s=scale: maskgit.sample(
        p, l, r, model=model, num_steps=4, guidance_scale=s, keep_first_logits=True))(
            params, labels, jax.random.key(0))
    # Logits are O(30) here; float32 rounding of the batched forward is ~1e-5 relative.
    np.testing.assert_allclose(state.first_logits_BxGxV, expected, atol=1e-3, rtol=1e-5,
                               err_msg=f'guidance_scale={scale}')


@pytest.mark.parametrize('guidance', [0.0, 1.5])
def test_ar_kv_cache_sampling_equals_uncached(ar_model, guidance):
  model, params, _ = ar_model
  labels = jnp.arange(8) % C
  kw = dict(model=model, guidance_scale=guidance, guidance_schedule='linear')
  cached = jax.jit(lambda p, l, r: autoregressive.sample(p, l, r, **kw))
  uncached = jax.jit(lambda p, l, r: autoregressive.sample_uncached(p, l, r, **kw))
  for seed in (0, 1):
    a = np.asarray(cached(params, labels, jax.random.key(seed)))
    b = np.asarray(uncached(params, labels, jax.random.key(seed)))
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() < V
  assert len(np.unique(a, axis=0)) > 1  # samples differ between examples


def test_kv_cache_logits_equal_causal_forward(ar_model):
  """Feeding a sequence token by token through the cache gives the full causal logits."""
  model, params, _ = ar_model
  ids = jax.random.randint(jax.random.key(5), (3, G), 0, V)
  seq = generator_lib.ar_inputs(ids, jnp.array([0, 1, 3]), V)
  forward = jax.jit(lambda s: model.apply({'params': params}, s))
  full = forward(seq)
  decoder = model.clone(decode=True)
  decode_step = jax.jit(lambda cache, token, i: decoder.apply(
      {'params': params, 'cache': cache}, token, position=i, mutable=['cache']))
  cache = autoregressive.init_cache(model, 3)
  for i in range(G):
    out, mut = decode_step(cache, seq[:, i:i + 1], i)
    cache = mut['cache']
    np.testing.assert_allclose(out[:, 0], full[:, i], atol=1e-4, rtol=1e-5)
  # Causality: changing later inputs leaves earlier outputs unchanged.
  changed = forward(seq.at[:, 3:].set((seq[:, 3:] + 1) % V))
  np.testing.assert_allclose(changed[:, :3], full[:, :3], atol=1e-4, rtol=1e-5)
  assert not np.allclose(changed[:, 3:], full[:, 3:], atol=1e-3)


def test_decode_mode_keeps_the_param_tree():
  x = jnp.zeros((2, 5, 16))
  plain = jax.eval_shape(vit.Transformer(2, 2, 32).init, jax.random.key(0), x)
  cached = jax.eval_shape(vit.Transformer(2, 2, 32, decode=True).init, jax.random.key(0), x)
  chex.assert_trees_all_equal_shapes_and_dtypes(plain['params'], cached['params'])
  assert 'cache' in cached and 'cache' not in plain


def test_class_balanced_labels():
  labels = generate.class_balanced_labels(25, 10)
  counts = np.bincount(labels, minlength=10)
  assert counts.max() - counts.min() <= 1 and counts.sum() == 25


@pytest.mark.parametrize('field,value,match', [
    ('generator.tokenizer_workdir', '', 'generator.tokenizer_workdir'),
    ('generator.type', 'diffusion', 'generator.type'),
    ('generator.mask_schedule', 'cubic', 'generator.mask_schedule'),
    ('generator.sampling.guidance_schedule', 'cosine', 'guidance_schedule'),
    ('generator.label_drop', 1.0, 'generator.label_drop'),
    ('generator.transformer.num_heads', 3, 'generator.transformer.width'),
])
def test_validate_names_the_generator_field(field, value, match):
  c = generator_fmnist.get_config('runlocal')
  c.generator.tokenizer_workdir = '/some/tokenizer'
  config_defaults.validate(c)
  *sections, key = field.split('.')
  node = c
  for s in sections:
    node = node[s]
  node[key] = value
  with pytest.raises(ValueError, match=match):
    config_defaults.validate(c)

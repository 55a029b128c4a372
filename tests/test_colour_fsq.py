"""FSQ (models/fsq.py) and the mean colour as side ids (models/colour.py), in every family:
values, ids, stored-id round trips, config errors."""
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import selfboottok_photos
from configs import tatok_photos
from configs import titok_photos
from sbt_jax import config_defaults
from sbt_jax.models import colour
from sbt_jax.models import fsq
from sbt_jax.models import options as options_lib
from sbt_jax.models import registry
from tests import fakes


def test_fsq_rounds_each_value_and_ids_are_base_levels_digits():
  q = fsq.FSQuantizer(codebook_size=64, token_dim=3)  # 4 levels: -1, -1/3, 1/3, 1
  z = jnp.array([[[-5.0, 0.1, 5.0], [-0.5, 0.5, -0.1]]])
  out, aux = q.apply({}, z)
  levels = np.array([-1, -1 / 3, 1 / 3, 1])
  bounded = np.tanh(np.asarray(z)) * 1.5
  digits = np.clip(np.round(bounded + 1.5), 0, 3).astype(int)
  np.testing.assert_allclose(np.asarray(out), levels[digits], atol=1e-6)
  np.testing.assert_array_equal(np.asarray(aux['ids']),
                                digits[..., 0] * 16 + digits[..., 1] * 4 + digits[..., 2])
  np.testing.assert_allclose(np.asarray(q.apply({}, aux['ids'], method='lookup')),
                             np.asarray(out), atol=1e-6)
  codes = np.asarray(q.apply({}, method='normalized_codebook'))
  assert codes.shape == (64, 3) and len(np.unique(codes, axis=0)) == 64
  # Straight-through: the gradient is that of the bounded (tanh) values.
  w = jnp.arange(6.0).reshape(1, 2, 3)
  g = jax.grad(lambda z: jnp.sum(q.apply({}, z)[0] * w))(z)
  np.testing.assert_allclose(np.asarray(g), np.asarray(w * (1 - np.tanh(z) ** 2)), rtol=1e-5,
                             atol=1e-6)
  assert float(aux['codebook_loss']) == 0.0 and float(aux['commit_loss']) == 0.0


def test_levels_for():
  assert fsq.levels_for(256, 4) == 4 and fsq.levels_for(256, 8) == 2
  assert fsq.levels_for(256, 12) == 0 and fsq.levels_for(100, 3) == 0


def test_colour_split_and_value_are_inverse_up_to_one_level():
  x = jax.random.uniform(jax.random.key(0), (4, 8, 8, 3), minval=-1, maxval=1)
  centred, ids = colour.split(x, 256)
  assert ids.shape == (4, 3) and ids.dtype == jnp.int32
  mean = np.asarray(jnp.mean(x, axis=(1, 2)))
  np.testing.assert_array_less(np.abs(np.asarray(colour.value(ids, 256))[:, 0, 0] - mean),
                               1 / 255 + 1e-6)
  np.testing.assert_allclose(np.asarray(centred + colour.value(ids, 256)), np.asarray(x),
                             atol=1e-6)
  # Ids a generator may sample past the levels read as the top level.
  np.testing.assert_allclose(np.asarray(colour.value(jnp.array([[300, -1, 255]]), 256)),
                             [[[[1.0, -1.0, 1.0]]]])


def rgb_config(family):
  """The family's photos config, runlocal (FSQ codebooks of 64 = 4 ** 3, 64-level colour
  ids), on 16x16 RGB."""
  module = {'titok': titok_photos, 'selfboottok': selfboottok_photos,
            'tatok': tatok_photos}[family]
  c = module.get_config('runlocal')
  c.data.image_size = 16
  config_defaults.validate(c)
  return c


@pytest.mark.parametrize('family', ['titok', 'selfboottok', 'tatok'])
def test_colour_ids_follow_the_global_ids_and_round_trip(family):
  c = rgb_config(family)
  spec = registry.spec(c)
  model = spec.build(c)
  x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3), minval=-1, maxval=1)
  x = x.at[1].multiply(0.2).at[1].add(0.5)  # a second image of another mean colour
  params = nn.meta.unbox(fakes.jit_init(model, jax.random.key(1), x, *spec.train_args(
      jax.random.key(2), 2, c)))['params']
  _, aux = model.apply({'params': params}, x, *spec.train_args(jax.random.key(2), 2, c))
  g = c.model.num_global_tokens
  _, expected_colour = colour.split(x, 64)
  np.testing.assert_array_equal(np.asarray(aux['colour_ids']), np.asarray(expected_colour))
  chex.assert_shape(aux['ids'], (2, g))  # the codebook's ids alone (usage, restarts)
  assert options_lib.Geometry.from_config(c).num_global_ids == g + 3
  rate = spec.default_rate(c)
  for mode in spec.modes:
    ids = spec.encode_fn(model, mode)(params, x, rate)
    assert ids.shape == (2, spec.ids_per_image(c, mode))
    np.testing.assert_array_equal(np.asarray(ids[:, g:g + 3]), np.asarray(expected_colour))
    checked, kind = spec.check_ids(c, np.asarray(ids))
    out = spec.decode_fn(model, kind)(params, jnp.asarray(checked), jax.random.key(3), 0.0,
                                      rate)
    chex.assert_shape(out, x.shape)
    if mode == 'compress':  # decoding the stored ids is the forward pass's output
      recon_eval, _ = model.apply({'params': params}, x)  # (TaTok: at the eval rate)
      np.testing.assert_allclose(np.asarray(out), np.asarray(recon_eval), atol=1e-5)
  # Another colour id changes the decoded image by exactly that colour, everywhere.
  ids = np.asarray(spec.encode_fn(model, spec.modes[0])(params, x, rate)).copy()
  base = spec.decode_fn(model, 'compress')(params, jnp.asarray(ids), None, 0.0, rate)
  ids[:, g] += 1  # channel 0 one level up
  ids[:, g] = np.minimum(ids[:, g], 63)
  moved = spec.decode_fn(model, 'compress')(params, jnp.asarray(ids), None, 0.0, rate)
  step = np.asarray(moved - base)
  bumped = np.asarray(expected_colour)[:, 0] < 63
  np.testing.assert_allclose(step[bumped][..., 0], 2 / 63, atol=1e-5)
  np.testing.assert_allclose(step[..., 1:], 0.0, atol=1e-6)


@pytest.mark.parametrize('family', ['titok', 'selfboottok', 'tatok'])
def test_generators_see_colour_ids_as_global_tokens(family):
  c = rgb_config(family)
  spec = registry.spec(c)
  tok = spec.global_tokenizer(c)
  params = {'tokenizer': nn.meta.unbox(fakes.jit_init(
      spec.build(c), jax.random.key(1), jnp.zeros((1, 16, 16, 3)),
      *spec.train_args(jax.random.key(2), 1, c)))['params']}
  x = jnp.full((2, 16, 16, 3), 0.25)
  ids = tok.encode_global_ids(params, x)
  assert ids.shape == (2, tok.num_tokens) and int(ids.max()) < tok.vocab_size
  g = c.model.num_global_tokens
  np.testing.assert_array_equal(np.asarray(ids[:, g:g + 3]), np.round(0.625 * 63))
  chex.assert_shape(tok.decode_global_ids(params, ids), x.shape)


def test_restarts_skip_fsq_codebooks_and_bad_settings_name_the_field():
  c = rgb_config('selfboottok')
  books = registry.spec(c).codebooks(c)
  assert [b.restartable for b in books] == [False, False]
  c.model.global_quantizer = 'soft'
  with pytest.raises(ValueError, match="global_quantizer='soft' needs model.quantizer='vq'"):
    config_defaults.validate(c)
  c = rgb_config('tatok')
  c.model.tatok.patch_codebook_size = 100
  with pytest.raises(ValueError, match='patch_quantizer has 100 entries of dimension 3'):
    config_defaults.validate(c)
  c = rgb_config('titok')
  c.model.colour_levels = 65
  with pytest.raises(ValueError, match='model.colour_levels=65'):
    config_defaults.validate(c)
  c.model.colour_levels, c.model.quantizer = 64, 'lfq'
  with pytest.raises(ValueError, match="model.quantizer='lfq'"):
    config_defaults.validate(c)


@pytest.mark.parametrize('family', ['titok', 'selfboottok', 'tatok'])
def test_zero_pixel_head_starts_every_family_at_the_colour(family):
  c = rgb_config(family)
  assert c.model.zero_pixel_head == (family != 'tatok')  # as in the photos configs
  c.model.zero_pixel_head = True
  spec = registry.spec(c)
  x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3), minval=-1, maxval=1)

  def init(config):
    model = spec.build(config)
    params = nn.meta.unbox(fakes.jit_init(model, jax.random.key(1), x, *spec.train_args(
        jax.random.key(2), 2, config)))['params']
    return model, params

  model, params = init(c)
  heads = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(params)
           if 'to_pixels' in jax.tree_util.keystr(k)}
  assert len(heads) == 2 and all(not np.any(np.asarray(v)) for v in heads.values())
  recon, aux = model.apply({'params': params}, x, *spec.train_args(jax.random.key(2), 2, c))
  np.testing.assert_array_equal(np.asarray(recon), np.broadcast_to(
      np.asarray(colour.value(aux['colour_ids'], 64)), x.shape))
  # Only the head's init differs: the same tree, and every other leaf is the same draw.
  c.model.zero_pixel_head = False
  _, default = init(c)
  chex.assert_trees_all_equal_shapes(params, default)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(params),
                          jax.tree.leaves(default)):
    if 'to_pixels' not in jax.tree_util.keystr(path):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    elif 'kernel' in jax.tree_util.keystr(path):
      assert np.any(np.asarray(b))

"""TiTok model and vector quantizer: values, gradients, shapes, dtypes."""
import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import titok_fmnist
from sbt_jax.models import quantizer as quantizer_lib
from sbt_jax.models import titok
from tests import fakes


def test_quantizer_picks_nearest_normalised_code_and_passes_gradients():
  vq = quantizer_lib.VectorQuantizer(codebook_size=8, token_dim=4)
  z = jax.random.normal(jax.random.key(1), (2, 3, 4))
  params = nn.meta.unbox(fakes.jit_init(vq, jax.random.key(0), z))
  q, aux = vq.apply(params, z)
  codes = np.asarray(quantizer_lib.l2_normalize(params['params']['codebook']))
  zn = np.asarray(quantizer_lib.l2_normalize(z))
  dist = ((zn[:, :, None, :] - codes[None, None]) ** 2).sum(-1)
  np.testing.assert_array_equal(np.asarray(aux['ids']), dist.argmin(-1))
  # Forward value is the code; the straight-through gradient of sum(q * w) wrt z is that of
  # sum(norm(z) * w), i.e. it ignores the rounding.
  np.testing.assert_allclose(np.asarray(q), codes[np.asarray(aux['ids'])], atol=1e-6)
  w = jax.random.normal(jax.random.key(2), q.shape)
  g_vq = jax.grad(lambda z: jnp.sum(vq.apply(params, z)[0] * w))(z)
  g_id = jax.grad(lambda z: jnp.sum(quantizer_lib.l2_normalize(z) * w))(z)
  np.testing.assert_allclose(np.asarray(g_vq), np.asarray(g_id), atol=1e-6)
  expected = np.mean((codes[np.asarray(aux['ids'])] - zn) ** 2)
  np.testing.assert_allclose(float(aux['codebook_loss']), expected, rtol=1e-5)
  np.testing.assert_allclose(float(aux['commit_loss']), expected, rtol=1e-5)


def test_codebook_stats():
  ids = jnp.array([[0, 0, 1, 1]])
  stats = quantizer_lib.codebook_stats(ids, 4)
  np.testing.assert_allclose(float(stats['codebook_usage']), 0.5)
  np.testing.assert_allclose(float(stats['codebook_perplexity']), 2.0, rtol=1e-6)
  masked = quantizer_lib.codebook_stats(jnp.array([[0, 1], [2, 3]]), 4, jnp.array([1.0, 0.0]))
  np.testing.assert_allclose(float(masked['codebook_usage']), 0.5)


def _model_and_params(dtype='float32'):
  c = titok_fmnist.get_config('runlocal')
  c.model.compute_dtype = dtype
  model = titok.build_tokenizer(c)
  x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1), minval=-1, maxval=1)
  params = nn.meta.unbox(fakes.jit_init(model, jax.random.key(1), x))
  return c, model, params, x


def test_titok_shapes_and_decode_paths_agree():
  c, model, params, x = _model_and_params()
  recon, aux = model.apply(params, x)
  chex.assert_shape(recon, x.shape)
  chex.assert_shape(aux['ids'], (2, c.model.num_global_tokens))
  from_ids = model.apply(params, aux['ids'], method='decode_ids')
  np.testing.assert_allclose(np.asarray(from_ids), np.asarray(recon), atol=1e-5)
  # Every image position depends on the tokens: changing one id changes the output.
  ids2 = aux['ids'].at[0, 0].set((aux['ids'][0, 0] + 1) % c.model.codebook_size)
  other = model.apply(params, ids2, method='decode_ids')
  assert float(jnp.abs(other[0] - from_ids[0]).max()) > 1e-4
  np.testing.assert_allclose(np.asarray(other[1]), np.asarray(from_ids[1]), atol=1e-5)


def test_bfloat16_compute_is_close_to_float32():
  _, model32, params, x = _model_and_params('float32')
  _, model16, _, _ = _model_and_params('bfloat16')
  enc32 = model32.apply(params, x, method='encode')[0]
  enc16 = model16.apply(params, x, method='encode')[0]
  assert enc16.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(enc16), np.asarray(enc32), atol=0.05)
  # Params are float32 whatever the compute dtype.
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))


def test_dead_code_restart_moves_only_dead_codes():
  from sbt_jax.models import codebook_restart  # pylint: disable=g-import-not-at-top
  k, t = 8, 4
  codebook = jax.random.normal(jax.random.key(0), (k, t))
  usage = codebook_restart.init_usage(k)
  ids = jnp.array([[0, 0, 1, 1, 0, 1]])  # only codes 0 and 1 are used
  for _ in range(400):
    usage = codebook_restart.update_usage(usage, ids, decay=0.99)
  np.testing.assert_allclose(float(usage.sum()), 1.0 - 0.99 ** 400, rtol=1e-4)
  z = jax.random.normal(jax.random.key(1), (6, t))
  same, _, dead_off = codebook_restart.restart(codebook, usage, z, jax.random.key(2),
                                            threshold=0.03, enabled=False)
  np.testing.assert_array_equal(np.asarray(same), np.asarray(codebook))
  assert int(dead_off.sum()) == 0
  new, new_usage, dead = codebook_restart.restart(codebook, usage, z, jax.random.key(2),
                                               threshold=0.03, enabled=True)
  assert int(dead.sum()) == 6
  np.testing.assert_array_equal(np.asarray(new[:2]), np.asarray(codebook[:2]))
  zs = {tuple(np.round(np.asarray(r), 6)) for r in z}
  assert all(tuple(np.round(np.asarray(r), 6)) in zs for r in new[2:])
  np.testing.assert_allclose(np.asarray(new_usage[2:]), 2 * 0.03 / k)


def test_ema_decay_warms_up():
  from sbt_jax.trainers import state as state_lib  # pylint: disable=g-import-not-at-top
  np.testing.assert_allclose(float(state_lib.ema_decay_at(jnp.array(0), 0.999)), 0.1)
  np.testing.assert_allclose(float(state_lib.ema_decay_at(jnp.array(90), 0.999)), 0.91,
                             rtol=1e-6)
  assert float(state_lib.ema_decay_at(jnp.array(100000), 0.999)) == np.float32(0.999)


@pytest.mark.parametrize('remat_policy,scan_layers,masked,impl', [
    ('full', False, True, 'chunked'), ('none', True, False, 'xla')])
def test_transformer_keep_equals_the_full_output_sliced(remat_policy, scan_layers, masked,
                                                         impl):
  """keep=(start, stop) computes the last block for those rows only (exact), under remat
  with a [L, L] mask and under scan (sliced at the end); gradients agree too."""
  from sbt_jax.models import vit  # pylint: disable=g-import-not-at-top
  m = vit.Transformer(2, 2, 32, attention_impl=impl, remat_policy=remat_policy,
                      scan_layers=scan_layers)
  x = jax.random.normal(jax.random.key(0), (2, 7, 16))
  mask = jnp.tril(jnp.ones((7, 7), bool)) if masked else None
  params = nn.meta.unbox(fakes.jit_init(m, jax.random.key(1), x, mask))
  keep = (2, 5)
  w = jax.random.normal(jax.random.key(2), (2, 3, 16))

  @functools.partial(jax.jit, static_argnums=2)
  def out_and_grads(params, x, use_keep):
    def f(p, x):
      if use_keep:
        return m.apply(p, x, mask, keep=keep)
      return m.apply(p, x, mask)[:, keep[0]:keep[1]]
    return f(params, x), jax.grad(lambda p, x: jnp.sum(f(p, x) * w), argnums=(0, 1))(params, x)

  kept, g_kept = out_and_grads(params, x, True)
  full, g_full = out_and_grads(params, x, False)
  assert kept.shape == full.shape == (2, 3, 16)
  np.testing.assert_allclose(np.asarray(kept), np.asarray(full), atol=1e-5, rtol=1e-5)
  chex.assert_trees_all_close(g_kept, g_full, atol=1e-5, rtol=1e-5)

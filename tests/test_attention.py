"""'chunked' attention (lax.map + recomputing custom VJP) against the plain 'xla' form."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sbt_jax.models import attention

B, L, S, H, K = 3, 7, 7, 2, 8


def _inputs(seed=0, mask_shape=None, h=H):
  ks = jax.random.split(jax.random.key(seed), 5)
  q = jax.random.normal(ks[0], (B, L, h, K))
  k = jax.random.normal(ks[1], (B, S, h, K))
  v = jax.random.normal(ks[2], (B, S, h, K))
  do = jax.random.normal(ks[3], (B, L, h, K))
  mask = None
  if mask_shape is not None:
    mask = jax.random.bernoulli(ks[4], 0.7, mask_shape)
    mask = mask.at[..., 0].set(True)  # every query sees at least one key
  return q, k, v, do, mask


def _reference(q, k, v, mask):
  """Textbook softmax attention in float64 numpy."""
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  s = np.einsum('blhk,bshk->bhls', q, k) / np.sqrt(q.shape[-1])
  if mask is not None:
    s = np.where(np.broadcast_to(np.asarray(mask), s.shape), s, -np.inf)
  p = np.exp(s - s.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  return np.einsum('bhls,bshk->blhk', p, v)


def _out_and_grads(impl, q, k, v, do, mask, dtype):
  def f(q, k, v):
    return attention.attention(q, k, v, mask, dtype=dtype, impl=impl)
  out, vjp = jax.vjp(f, q, k, v)
  return (out,) + vjp(do)


MASKS = [None, (B, H, L, S), (1, 1, L, S), (B, 1, L, S), (L, S)]


def _check_chunked_matches_xla_float32(mask_shape, h=H):
  q, k, v, do, mask = _inputs(mask_shape=mask_shape, h=h)
  chunked = _out_and_grads('chunked', q, k, v, do, mask, jnp.float32)
  xla = _out_and_grads('xla', q, k, v, do, mask, jnp.float32)
  for name, a, b in zip(('out', 'dq', 'dk', 'dv'), chunked, xla):
    assert a.shape == b.shape and a.dtype == jnp.float32, name
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5, err_msg=name)
  np.testing.assert_allclose(chunked[0], _reference(q, k, v, mask), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('mask_shape', MASKS)
def test_chunked_matches_xla_float32(mask_shape):
  _check_chunked_matches_xla_float32(mask_shape)


@pytest.mark.parametrize('mask_shape', [None, (B, 4, L, S), (1, 4, L, S), (B, 1, L, S),
                                        (1, 1, L, S), (B, 1, 1, S)])
def test_chunked_with_head_groups_matches_xla(monkeypatch, mask_shape):
  """4 heads with a score budget of 2 heads: each example runs as 2 groups of 2 heads."""
  monkeypatch.setattr(attention, 'SCORE_BLOCK_BYTES', 2 * L * S * 4)
  assert attention.head_groups(4, L, S) == 2
  _check_chunked_matches_xla_float32(mask_shape, h=4)


def test_head_groups():
  assert attention.head_groups(8, 384, 384) == 2    # S-128: 4.5 MiB per example
  assert attention.head_groups(8, 256, 256) == 1    # 2 MiB
  assert attention.head_groups(12, 320, 320) == 2   # B-64
  assert attention.head_groups(3, 4096, 4096) == 3  # over budget even per head


@pytest.mark.parametrize('mask_shape', [None, (B, H, L, S)])
def test_chunked_matches_xla_bfloat16(mask_shape):
  q, k, v, do, mask = _inputs(mask_shape=mask_shape)
  chunked = _out_and_grads('chunked', q, k, v, do, mask, jnp.bfloat16)
  xla = _out_and_grads('xla', q, k, v, do, mask, jnp.bfloat16)
  exact = _out_and_grads('xla', q, k, v, do, mask, jnp.float32)
  for name, a, b, e in zip(('out', 'dq', 'dk', 'dv'), chunked, xla, exact):
    assert a.dtype == jnp.float32, name
    np.testing.assert_allclose(a, b, atol=5e-2, rtol=5e-2, err_msg=name)
    np.testing.assert_allclose(a, e, atol=1e-1, rtol=1e-1, err_msg=name)


def test_masked_keys_get_no_weight_and_no_gradient():
  """Changing a masked-out key/value must change neither the output nor its own gradient."""
  q, k, v, do, _ = _inputs()
  mask = jnp.ones((1, 1, L, S), bool).at[..., -1].set(False)
  out, dq, dk, dv = _out_and_grads('chunked', q, k, v, do, mask, jnp.float32)
  k2, v2 = k.at[:, -1].add(100.0), v.at[:, -1].add(100.0)
  out2 = attention.attention(q, k2, v2, mask, dtype=jnp.float32, impl='chunked')
  np.testing.assert_allclose(out, out2, atol=1e-5)
  np.testing.assert_array_equal(dk[:, -1], 0.0)
  np.testing.assert_array_equal(dv[:, -1], 0.0)


def test_large_scores_stay_finite():
  """Scores of ~1e4 must not overflow exp (the max is subtracted before exp)."""
  q, k, v, do, _ = _inputs()
  q = q * 300.0
  outs = _out_and_grads('chunked', q, k, v, do, None, jnp.float32)
  for a in outs:
    assert np.all(np.isfinite(a))
  np.testing.assert_allclose(outs[0], _reference(q, k, v, None), atol=1e-4, rtol=1e-4)


def test_comparison_catches_a_wrong_softmax_scale(monkeypatch):
  """The tolerance above is tight enough to catch a bug: chunked attention without the
  1/sqrt(K) scale on the scores must fail the comparison with 'xla'."""
  q, k, v, do, _ = _inputs()
  xla = _out_and_grads('xla', q, k, v, do, None, jnp.float32)
  monkeypatch.setattr(attention, '_scaled_queries', lambda q, dtype: q.astype(dtype))
  buggy = _out_and_grads('chunked', q, k, v, do, None, jnp.float32)
  with pytest.raises(AssertionError):
    np.testing.assert_allclose(buggy[0], xla[0], atol=1e-5, rtol=1e-5)


def test_auto_and_unknown_impl():
  assert attention.resolve_impl('auto') == (
      'chunked' if jax.default_backend() == 'cpu' else 'xla')
  with pytest.raises(ValueError, match='attention impl'):
    attention.resolve_impl('flash')


# Every mask form the models pass: none, per-example per-head, causal ([1, 1, L, S] and the
# 2D [L, S]), per-example ([B, 1, L, S]) and key padding ([B, 1, 1, S]).
DOT_PRODUCT_MASKS = MASKS + [(B, 1, 1, S)]


@pytest.mark.parametrize('mask_shape', DOT_PRODUCT_MASKS)
def test_dot_product_matches_the_other_paths(mask_shape):
  """jax.nn.dot_product_attention (the accelerator path) equals 'xla' and 'chunked' in values
  and in the gradients of q, k and v (float32, CPU)."""
  q, k, v, do, mask = _inputs(mask_shape=mask_shape)
  dot = _out_and_grads('dot_product', q, k, v, do, mask, jnp.float32)
  for impl in ('xla', 'chunked'):
    other = _out_and_grads(impl, q, k, v, do, mask, jnp.float32)
    for name, a, b in zip(('out', 'dq', 'dk', 'dv'), dot, other):
      assert a.shape == b.shape and a.dtype == jnp.float32, name
      np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5, err_msg=f'{impl} {name}')


def test_dot_product_kv_cache_shapes():
  """One query over a longer key cache with a causal mask (KV-cache decoding, L != S)."""
  q, k, v, do, _ = _inputs()
  q, do = q[:, :1], do[:, :1]
  mask = (jnp.arange(S)[None, :] <= 3)[None, None]  # [1, 1, 1, S]: keys 0..3 are filled
  dot = _out_and_grads('dot_product', q, k, v, do, mask, jnp.float32)
  xla = _out_and_grads('xla', q, k, v, do, mask, jnp.float32)
  for a, b in zip(dot, xla):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(dot[0], _reference(q, k, v, mask), atol=1e-5, rtol=1e-5)


def test_auto_is_dot_product_off_cpu(monkeypatch):
  from sbt_jax.models import cpu_kernels  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(cpu_kernels, 'enabled', lambda: False)
  assert attention.resolve_impl('auto') == 'dot_product'
  monkeypatch.setattr(cpu_kernels, 'enabled', lambda: True)
  assert attention.resolve_impl('auto') == 'chunked'

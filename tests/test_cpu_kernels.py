"""The CPU kernels (sbt_jax/models/cpu_kernels.py) against plain JAX/Flax autodiff, and the
model's two paths: the kernels (CPU backend) and plain code (every other backend), forced
here by patching the one selection function, cpu_kernels.enabled."""
import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sbt_jax.models import attention
from sbt_jax.models import cpu_kernels
from sbt_jax.models import vit
from tests import fakes


def _select(monkeypatch, cpu):
  """Make the model code trace the CPU kernels (cpu=True) or the plain path (cpu=False)."""
  monkeypatch.setattr(cpu_kernels, 'enabled', lambda: cpu)


def test_selection_follows_the_backend(monkeypatch):
  assert cpu_kernels.enabled() == (jax.default_backend() == 'cpu')
  for cpu, impl in ((True, 'chunked'), (False, 'dot_product')):
    _select(monkeypatch, cpu)
    assert attention.resolve_impl('auto') == impl


# x[B, L, D] . w for every dot form the models use, and one outside the dense form.
_DOT_CASES = {
    'dense': ((((2,), (0,)), ((), ())), (16, 24)),          # w[D, F]: C=16 <= N=24
    'qkv': ((((2,), (0,)), ((), ())), (16, 3, 2, 4)),       # w[D, 3, H, K]: C=16 <= N=24
    'out': ((((1, 2), (0, 1)), ((), ())), (6, 16, 5)),      # w[L, D, F]: C=96 > N=5
    'other': ((((1,), (0,)), ((), ())), (6, 7)),            # contracts a middle dim
}


def _dot_grads(dtype):
  """(name, grads of cpu_kernels.matmul_dot_general(dtype), float32 autodiff grads)."""
  x = jax.random.normal(jax.random.key(0), (2, 6, 16))
  ours = cpu_kernels.matmul_dot_general(dtype)
  ref = functools.partial(jax.lax.dot_general, precision=jax.lax.Precision.HIGHEST)
  for name, (dn, shape) in _DOT_CASES.items():
    w = jax.random.normal(jax.random.key(1), shape) / 4
    def loss(x, w, dot, dn=dn):
      y = dot(x, w, dn)
      return jnp.sum(jnp.sin(y) * jnp.arange(y.size).reshape(y.shape) / y.size)
    got = jax.jit(jax.grad(functools.partial(loss, dot=ours), argnums=(0, 1)))(x, w)
    want = jax.grad(functools.partial(loss, dot=ref), argnums=(0, 1))(x, w)
    yield name, got, want


def test_bfloat16_dense_gradients_are_bf16_products_close_to_float32():
  """The bf16 dot's custom backward (bf16 cotangent, float32-accumulated transposes) gives
  the float32 gradients up to bf16 rounding, for Dense and both DenseGeneral forms, and
  for a contraction outside the dense form (JAX's own transposes)."""
  for name, got, want in _dot_grads(jnp.bfloat16):
    for g, r in zip(got, want):
      assert g.dtype == jnp.float32 and g.shape == r.shape, name
      scale = float(jnp.abs(r).max())
      np.testing.assert_allclose(np.asarray(g), np.asarray(r), atol=0.03 * scale,
                                 err_msg=name)
    # Not a float32 computation in disguise: bf16 rounding shows.
    assert float(jnp.abs(got[1] - want[1]).max()) > 0, name


def test_float32_dense_gradients_match_autodiff():
  """The float32 dot's custom backward (weight gradients as row-major products of an
  explicitly transposed operand) equals autodiff of lax.dot_general, for weight gradients
  with fewer (dense, qkv) and more (out) input than output features."""
  for name, got, want in _dot_grads(jnp.float32):
    for g, r in zip(got, want):
      assert g.dtype == jnp.float32 and g.shape == r.shape, name
      np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-5,
                                 atol=1e-5 * float(jnp.abs(r).max()), err_msg=name)


@pytest.mark.parametrize('cpu', [True, False])
def test_gelu_matches_flax_gelu_values_and_gradients(monkeypatch, cpu):
  """vit.gelu (on CPU: the backward recomputes tanh from x) against nn.gelu (tanh)."""
  _select(monkeypatch, cpu)
  x = jnp.linspace(-8.0, 8.0, 4001)
  np.testing.assert_allclose(vit.gelu(x), nn.gelu(x), atol=1e-6)
  grad = lambda f: jax.jit(jax.vmap(jax.grad(f)))(x)  # pylint: disable=unnecessary-lambda-assignment
  np.testing.assert_allclose(grad(vit.gelu), grad(nn.gelu), atol=1e-5)


@pytest.mark.parametrize('cpu', [True, False])
def test_layer_norm_matches_flax_layer_norm_values_and_gradients(monkeypatch, cpu):
  """vit.LayerNorm (on CPU: hand-written backward) against nn.LayerNorm: same params, same
  output, same gradients for x, scale and bias."""
  _select(monkeypatch, cpu)
  x = jax.random.normal(jax.random.key(0), (2, 5, 16)) * 3.0 + 1.0
  ours, ref = vit.layer_norm(), nn.LayerNorm(epsilon=1e-6, dtype=jnp.float32)
  params = nn.meta.unbox(fakes.jit_init(ours, jax.random.key(1), x))
  params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(3), p.shape), params)
  chex.assert_trees_all_equal_shapes(params, fakes.jit_init(ref, jax.random.key(1), x))
  w = jax.random.normal(jax.random.key(2), x.shape)
  out = ours.apply(params, x)
  np.testing.assert_allclose(np.asarray(out), np.asarray(ref.apply(params, x)), atol=1e-5)
  grads = jax.grad(lambda p, x: jnp.sum(ours.apply(p, x) * w), argnums=(0, 1))(params, x)
  ref_grads = jax.grad(lambda p, x: jnp.sum(ref.apply(p, x) * w), argnums=(0, 1))(params, x)
  chex.assert_trees_all_close(grads, ref_grads, atol=1e-5, rtol=1e-5)


def test_dense_forward_is_the_same_float32_product_on_both_paths(monkeypatch):
  """bf16 operands, float32 output on both paths (only the backward differs)."""
  x = jax.random.normal(jax.random.key(0), (2, 5, 16))
  outs = []
  for cpu in (True, False):
    _select(monkeypatch, cpu)
    dense = vit.Dense(24, jnp.bfloat16, 'fc', ('embed', 'mlp'), ('mlp',))
    params = nn.meta.unbox(fakes.jit_init(dense, jax.random.key(1), x))
    outs.append(dense.apply(params, x))
  assert outs[0].dtype == outs[1].dtype == jnp.float32
  np.testing.assert_array_equal(outs[0], outs[1])


def _block_out_and_grads(monkeypatch, cpu, dtype):
  """A Block's output, its VJP of a fixed cotangent (params, x) and its forward jaxpr, with
  the CPU kernels (cpu=True) or the plain path; the same params either way."""
  _select(monkeypatch, cpu)
  block = vit.Block(num_heads=2, mlp_dim=64, dtype=dtype)  # attention_impl='auto'
  x = jax.random.normal(jax.random.key(0), (2, 9, 32)) * 2.0 + 0.5
  mask = jnp.tril(jnp.ones((9, 9), bool))
  params = nn.meta.unbox(fakes.jit_init(block, jax.random.key(1), x, mask))
  # LayerNorm scale 1 / bias 0 at init would hide mistakes in their gradients' use.
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(3), p.shape),
                        params)
  w = jax.random.normal(jax.random.key(2), x.shape)
  fwd = lambda p, x: block.apply(p, x, mask)  # pylint: disable=unnecessary-lambda-assignment
  jaxpr = str(jax.make_jaxpr(fwd)(params, x))
  out, vjp = jax.jit(lambda p, x: jax.vjp(fwd, p, x))(params, x)  # a new function: traced
  return out, vjp(w), jaxpr


@pytest.mark.parametrize('dtype,tol', [(jnp.float32, 1e-5), (jnp.bfloat16, 2e-2)])
def test_block_plain_path_matches_cpu_kernels(monkeypatch, dtype, tol):
  """A Transformer block (LayerNorm, qkv/out DenseGeneral, attention 'auto', GELU MLP):
  forward and gradients of the plain path (what GPU/TPU run) against the CPU kernels'.
  float32: within 1e-5. bfloat16: the kernels round the Dense cotangents to bf16 and the
  chunked and xla attention round differently, so within 2% of each leaf's largest value."""
  out_cpu, grads_cpu, jaxpr_cpu = _block_out_and_grads(monkeypatch, True, dtype)
  out, grads, jaxpr = _block_out_and_grads(monkeypatch, False, dtype)
  # The CPU path runs custom VJPs and the chunked attention's lax.map; the plain path neither.
  assert 'custom_vjp' in jaxpr_cpu and 'scan' in jaxpr_cpu
  assert 'custom_vjp' not in jaxpr and 'scan' not in jaxpr
  assert out.dtype == out_cpu.dtype == jnp.float32
  chex.assert_trees_all_equal_shapes_and_dtypes(grads, grads_cpu)
  flat_cpu = jax.tree_util.tree_leaves_with_path((out_cpu, grads_cpu))
  for (path, a), b in zip(flat_cpu, jax.tree.leaves((out, grads))):
    scale = 1.0 if dtype == jnp.float32 else float(jnp.abs(b).max())
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol * scale,
                               err_msg=jax.tree_util.keystr(path))

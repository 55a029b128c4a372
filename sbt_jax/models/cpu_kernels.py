"""Custom VJPs that make the model faster on XLA:CPU, used there only.

`enabled()` is the one backend check: the model code (vit.py, and attention.py's 'auto')
picks these kernels when it is true at trace time, and plain JAX/Flax code (autodiff of the
same forward math) elsewhere; GPU and TPU compilers need none of these workarounds. Each
kernel gives the plain code's values and gradients up to float rounding (bf16 Dense
backward: up to the rounding of the cotangent to bf16, see matmul_dot_general); this is
tested in tests/test_cpu_kernels.py. The speed-ups were measured on the S-128 train step on
a 2-core CPU VM (same-process A/Bs, see benchmarks/README.md).
"""
import functools
import math

import jax
import jax.numpy as jnp


def enabled() -> bool:
  """Whether the model code uses this module's kernels (and the chunked attention for
  attention_impl='auto'): on the CPU backend only. Checked at trace time."""
  return jax.default_backend() == 'cpu'


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def layer_norm(x_BxLxD, scale_D, bias_D, eps):
  """LayerNorm over the last axis (float32, two-pass variance) with a hand-written backward.

  Autodiff of nn.LayerNorm reduces g * scale over D twice; XLA:CPU hands such reductions to
  YNNPACK and first materialises scale broadcast to [B, L, D] (3-6 ms each, three per
  block at S-128). The backward here computes the two row means as matrix-vector products
  with scale instead. S-128 bf16 train step: median 5.31 -> 5.03 s (12 rounds).
  """
  return _layer_norm_fwd(x_BxLxD, scale_D, bias_D, eps)[0]


def _layer_norm_fwd(x_BxLxD, scale_D, bias_D, eps):
  xc_BxLxD = x_BxLxD - jnp.mean(x_BxLxD, -1, keepdims=True)
  rstd_BxLx1 = jax.lax.rsqrt(jnp.mean(xc_BxLxD * xc_BxLxD, -1, keepdims=True) + eps)
  xhat_BxLxD = xc_BxLxD * rstd_BxLx1
  return xhat_BxLxD * scale_D + bias_D, (xhat_BxLxD, rstd_BxLx1, scale_D)


def _layer_norm_bwd(eps, res, g_BxLxD):
  del eps
  xhat_BxLxD, rstd_BxLx1, scale_D = res
  d = g_BxLxD.shape[-1]
  gx_BxLxD = g_BxLxD * xhat_BxLxD
  mean_g_BxLx1 = jnp.dot(g_BxLxD, scale_D)[..., None] / d
  mean_gx_BxLx1 = jnp.dot(gx_BxLxD, scale_D)[..., None] / d
  dx_BxLxD = rstd_BxLx1 * (g_BxLxD * scale_D - mean_g_BxLx1 - xhat_BxLxD * mean_gx_BxLx1)
  rows = tuple(range(g_BxLxD.ndim - 1))
  return dx_BxLxD, jnp.sum(gx_BxLxD, rows), jnp.sum(g_BxLxD, rows)


layer_norm.defvjp(_layer_norm_fwd, _layer_norm_bwd)


_tanh_gelu = functools.partial(jax.nn.gelu, approximate=True)


@jax.custom_vjp
def gelu(x):
  """tanh-approximate GELU (nn.gelu's default) with a backward pass that keeps only x.

  Autodiff of nn.gelu saves tanh(.), so in a train step the forward pass writes and the
  backward reads one more [B, L, mlp_dim] float32 array per block, and XLA:CPU cannot fold
  the activation into the next matmul (YNNPACK does in inference). Here the backward
  recomputes GELU's derivative from x. S-128 float32 train step: median 8.64 -> 7.73 s
  (5 rounds); bf16 unchanged within the noise (4.59 vs 4.68 s).
  """
  return _tanh_gelu(x)


def _gelu_fwd(x):
  return gelu(x), x


def _gelu_bwd(x, g):
  return jax.vjp(_tanh_gelu, x)[1](g)


gelu.defvjp(_gelu_fwd, _gelu_bwd)


def matmul_dot_general(dtype):
  """dot_general for Dense layers: operands in `dtype`, products accumulated and returned in
  float32, with a hand-written backward pass (see _matmul_dot_bwd).

  With bfloat16 the backward products are bf16 x bf16 -> float32 too: the incoming float32
  gradient is rounded to bfloat16 first (as under PyTorch autocast). JAX's own transposes
  of a dot with preferred_element_type=float32 run float32 x bf16, which XLA:CPU computes
  in float32 at half speed (S-128 bf16 train step: 1.00 -> about 1.5 img/s). With float32,
  weight gradients get a CPU-friendly layout (see _weight_grad).
  """
  return functools.partial(_matmul_dot, dtype=jnp.dtype(dtype))


def _weight_grad(lhs, g, a, precision):
  """lhs [*A, *C], g [*A, *N] -> float32 [*C, *N], the sum over the A axes: a weight gradient.

  With float32 operands this is written as a row-major product of an explicitly transposed
  operand (the smaller one) behind an optimization barrier. Left to itself, XLA:CPU lays the
  float32 product out with both operands transposed and runs it in Eigen at about half the
  speed of YNNPACK's row-major product (the S-128 float32 train step: 8.2 -> 7.1 s,
  same-process A/B). For bfloat16 XLA:CPU already transposes one operand and uses YNNPACK;
  the explicit form made that step slower (4.6 -> 6.0 s), so it is not used.
  """
  dims_a = tuple(range(a))
  if lhs.dtype != jnp.float32:
    return jax.lax.dot_general(lhs, g, ((dims_a, dims_a), ((), ())), precision,
                               preferred_element_type=jnp.float32)
  rows, c, n = math.prod(lhs.shape[:a]), math.prod(lhs.shape[a:]), math.prod(g.shape[a:])
  lhs_AxC, g_AxN = lhs.reshape(rows, c), g.reshape(rows, n)
  nn_dims = (((1,), (0,)), ((), ()))
  if c <= n:  # lhs^T [C, A] . g [A, N]
    out_CxN = jax.lax.dot_general(jax.lax.optimization_barrier(lhs_AxC.T), g_AxN, nn_dims,
                                  precision, preferred_element_type=jnp.float32)
  else:  # (g^T [N, A] . lhs [A, C])^T; the outer barrier keeps XLA from folding the .T back
    out_NxC = jax.lax.dot_general(jax.lax.optimization_barrier(g_AxN.T), lhs_AxC, nn_dims,
                                  precision, preferred_element_type=jnp.float32)
    out_CxN = jax.lax.optimization_barrier(out_NxC).T
  return out_CxN.reshape(lhs.shape[a:] + g.shape[a:])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _matmul_dot_core(lhs, rhs, dimension_numbers, precision, dtype):
  del dtype  # the backward pass's operand dtype
  return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision,
                             preferred_element_type=jnp.float32)


def _matmul_dot_fwd(lhs, rhs, dimension_numbers, precision, dtype):
  return _matmul_dot_core(lhs, rhs, dimension_numbers, precision, dtype), (lhs, rhs)


def _matmul_dot_bwd(dimension_numbers, precision, dtype, res, g):
  lhs, rhs = res
  (lc, rc), (lb, rb) = dimension_numbers
  a, c = lhs.ndim - len(lc), len(lc)
  dense_form = (not lb and not rb and tuple(lc) == tuple(range(a, lhs.ndim))
                and tuple(rc) == tuple(range(c)))
  g = g.astype(dtype)
  if not dense_form:  # any other contraction: JAX's own transposes, dtype operands
    _, vjp = jax.vjp(lambda x, y: jax.lax.dot_general(x, y, dimension_numbers, precision),
                     lhs, rhs)
    d_lhs, d_rhs = vjp(g)
    return d_lhs.astype(lhs.dtype), d_rhs.astype(rhs.dtype)
  # lhs [*A, *C] . rhs [*C, *N] = out [*A, *N] (every flax Dense / DenseGeneral here):
  # d_lhs = g . rhs over N, d_rhs = lhs . g over A, both dtype x dtype -> float32.
  n = rhs.ndim - c
  d_lhs = jax.lax.dot_general(
      g, rhs, ((tuple(range(a, a + n)), tuple(range(c, c + n))), ((), ())), precision,
      preferred_element_type=jnp.float32)
  d_rhs = _weight_grad(lhs, g, a, precision)
  return d_lhs.astype(lhs.dtype), d_rhs.astype(rhs.dtype)


_matmul_dot_core.defvjp(_matmul_dot_fwd, _matmul_dot_bwd)


def _matmul_dot(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None, *,
                dtype):
  """lhs, rhs (already cast to dtype by flax) -> float32 product; dtype gradients."""
  del preferred_element_type  # always float32
  return _matmul_dot_core(lhs.astype(dtype), rhs.astype(dtype), dimension_numbers, precision,
                          dtype)

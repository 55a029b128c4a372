"""Pre-LayerNorm ViT blocks shared by every encoder, decoder and aligner.

Parameters carry logical axis names ('embed', 'mlp', 'heads', 'kv'); the mesh rules in the
config map them to mesh axes. `dtype` is the dtype of matmul operands (float32 or bfloat16);
params, accumulation, residual stream, LayerNorm and softmax stay float32.
"""
from typing import Any, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from sbt_jax.models import attention as attention_lib
from sbt_jax.models import cpu_kernels
from sbt_jax.models import layout

Dtype = Any


def dense_init(*names):
  return nn.with_logical_partitioning(nn.initializers.xavier_uniform(), names)


def zeros_init(*names):
  return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)


LN_EPS = 1e-6  # our layout's LayerNorm epsilon (the reference TiTok layout's is 1e-5)

# Each op below runs a kernel of cpu_kernels on the CPU backend (cpu_kernels.enabled(), at
# trace time) and plain JAX/Flax code, differentiated by JAX, on every other backend.


def _layer_norm(x_BxLxD, scale_D, bias_D, eps):
  if cpu_kernels.enabled():
    return cpu_kernels.layer_norm(x_BxLxD, scale_D, bias_D, eps)
  xc_BxLxD = x_BxLxD - jnp.mean(x_BxLxD, -1, keepdims=True)
  rstd_BxLx1 = jax.lax.rsqrt(jnp.mean(xc_BxLxD * xc_BxLxD, -1, keepdims=True) + eps)
  return xc_BxLxD * rstd_BxLx1 * scale_D + bias_D


class LayerNorm(nn.Module):
  """LayerNorm over the last axis in float32 (two-pass variance), with nn.LayerNorm's
  parameter names ('scale', 'bias')."""
  eps: float = LN_EPS

  @nn.compact
  def __call__(self, x):
    d = x.shape[-1]
    scale_D = self.param(
        'scale', nn.with_logical_partitioning(nn.initializers.ones_init(), ('embed',)), (d,))
    bias_D = self.param('bias', zeros_init('embed'), (d,))
    return _layer_norm(x.astype(jnp.float32), scale_D, bias_D, self.eps)


def layer_norm(name=None, eps: float = LN_EPS):
  """LayerNorm in float32 (activations between matmuls stay float32)."""
  return LayerNorm(eps, name=name)


def gelu(x, exact: bool = False):
  """tanh-approximate GELU (nn.gelu's default); `exact`: the erf form (torch's nn.GELU)."""
  if exact:
    return jax.nn.gelu(x, approximate=False)
  if cpu_kernels.enabled():
    return cpu_kernels.gelu(x)
  return jax.nn.gelu(x, approximate=True)


def _dot_float32(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
  del preferred_element_type  # always float32
  return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision,
                             preferred_element_type=jnp.float32)


def matmul_dot_general(dtype):
  """dot_general for Dense layers: operands in `dtype` (flax casts them), products
  accumulated and returned in float32."""
  if cpu_kernels.enabled():
    return cpu_kernels.matmul_dot_general(dtype)
  return _dot_float32


def Dense(features, dtype, name, kernel_axes, bias_axes, zero_kernel=False):  # pylint: disable=invalid-name
  """nn.Dense with logical axis names, compute `dtype` and float32 outputs; `zero_kernel`:
  the kernel starts at zero (an output head that starts silent)."""
  kernel_init = zeros_init(*kernel_axes) if zero_kernel else dense_init(*kernel_axes)
  return nn.Dense(features, dtype=dtype, name=name,
                  dot_general=matmul_dot_general(dtype),
                  kernel_init=kernel_init, bias_init=zeros_init(*bias_axes))


class Attention(nn.Module):
  """Multi-head self-attention (one fused qkv projection).

  With `decode=True` (autoregressive sampling) keys and values of earlier positions live in
  the 'cache' collection: an `init` call on the full-length input creates it (its length is
  the cache length); every later call appends its L positions and attends to all positions
  written so far. The parameters are the same as without decode.
  """
  num_heads: int
  dtype: Dtype = jnp.float32
  attention_impl: str = 'auto'
  decode: bool = False

  @nn.compact
  def __call__(self, x_BxLxD, mask_BxHxLxL=None, queries=None):
    """`queries=(start, stop)`: only positions start:stop attend (and are returned); keys and
    values still come from every position."""
    d = x_BxLxD.shape[-1]
    head_dim = d // self.num_heads
    qkv = nn.DenseGeneral(
        (3, self.num_heads, head_dim), dtype=self.dtype, name='qkv',
        dot_general=matmul_dot_general(self.dtype),
        kernel_init=dense_init('embed', None, 'heads', 'kv'),
        bias_init=zeros_init(None, 'heads', 'kv'))(x_BxLxD)
    qkv = layout.constrain(qkv, ('batch', 'length', None, 'heads', 'kv'))
    q_BxLxHxK, k_BxLxHxK, v_BxLxHxK = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if queries is not None:
      q_BxLxHxK = q_BxLxHxK[:, slice(*queries)]
    if self.decode:
      initialized = self.has_variable('cache', 'key')
      key = self.variable('cache', 'key', jnp.zeros, k_BxLxHxK.shape, k_BxLxHxK.dtype)
      value = self.variable('cache', 'value', jnp.zeros, v_BxLxHxK.shape, v_BxLxHxK.dtype)
      index = self.variable('cache', 'index', lambda: jnp.zeros((), jnp.int32))
      if initialized:
        i, l = index.value, x_BxLxD.shape[1]
        key.value = jax.lax.dynamic_update_slice(key.value, k_BxLxHxK, (0, i, 0, 0))
        value.value = jax.lax.dynamic_update_slice(value.value, v_BxLxHxK, (0, i, 0, 0))
        index.value = i + l
        k_BxLxHxK, v_BxLxHxK = key.value, value.value
        s = k_BxLxHxK.shape[1]
        # Query j (absolute position i + j) sees cache positions <= i + j.
        mask_BxHxLxL = (jnp.arange(s)[None, :] <= i + jnp.arange(l)[:, None])[None, None]
    out_BxLxHxK = attention_lib.attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, mask_BxHxLxL,
                                          dtype=self.dtype, impl=self.attention_impl)
    out_BxLxHxK = layout.constrain(out_BxLxHxK, ('batch', 'length', 'heads', 'kv'))
    return nn.DenseGeneral(
        d, axis=(-2, -1), dtype=self.dtype, name='out',
        dot_general=matmul_dot_general(self.dtype),
        kernel_init=dense_init('heads', 'kv', 'embed'),
        bias_init=zeros_init('embed'))(out_BxLxHxK)


class MlpBlock(nn.Module):
  mlp_dim: int
  dtype: Dtype = jnp.float32
  exact_gelu: bool = False

  @nn.compact
  def __call__(self, x_BxLxD):
    d = x_BxLxD.shape[-1]
    h_BxLxM = Dense(self.mlp_dim, self.dtype, 'fc1', ('embed', 'mlp'), ('mlp',))(x_BxLxD)
    h_BxLxM = layout.constrain(h_BxLxM, ('batch', 'length', 'mlp'))
    h_BxLxM = gelu(h_BxLxM, self.exact_gelu)
    return Dense(d, self.dtype, 'fc2', ('mlp', 'embed'), ('embed',))(h_BxLxM)


class Block(nn.Module):
  """Pre-LN block. With `keep=(start, stop)` it returns positions start:stop only: those are
  the only attention queries and the only rows of the MLP (keys and values still span every
  position), the same values as the full block's rows at a fraction of the cost."""
  num_heads: int
  mlp_dim: int
  dtype: Dtype = jnp.float32
  attention_impl: str = 'auto'
  decode: bool = False
  keep: Optional[Tuple[int, int]] = None
  ln_eps: float = LN_EPS
  exact_gelu: bool = False

  @nn.compact
  def __call__(self, x_BxLxD, mask=None):
    x_BxLxD = layout.constrain(x_BxLxD, ('batch', 'length', 'embed'))
    h_BxLxD = layer_norm('ln1', self.ln_eps)(x_BxLxD)
    if self.keep is not None:
      x_BxLxD = x_BxLxD[:, slice(*self.keep)]
      if mask is not None and jnp.shape(mask)[-2] > 1:
        mask = mask[..., slice(*self.keep), :]
    x_BxLxD = x_BxLxD + Attention(self.num_heads, self.dtype, self.attention_impl,
                                  self.decode, name='attn')(h_BxLxD, mask, self.keep)
    x_BxLxD = x_BxLxD + MlpBlock(self.mlp_dim, self.dtype, self.exact_gelu, name='mlp')(
        layer_norm('ln2', self.ln_eps)(x_BxLxD))
    return x_BxLxD


# model.remat_policy -> what a block keeps for the backward pass (None: no remat at all).
REMAT_POLICIES = {
    'none': None,
    # Keep only the block's input; recompute everything inside it (least memory).
    'full': jax.checkpoint_policies.nothing_saveable,
    # Keep matmul outputs; recompute the cheap elementwise ops (LayerNorm, GELU, softmax).
    'dots_saveable': jax.checkpoint_policies.dots_saveable,
    # Keep matmul outputs without batch dimensions (weights x activations, not q x k).
    'dots_with_no_batch_dims_saveable':
        jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class _ScannedBlock(Block):
  """Block in nn.scan's (carry, x) -> (carry, y) form; the residual stream is the carry."""

  def __call__(self, x_BxLxD, mask=None):  # pylint: disable=arguments-renamed
    return super().__call__(x_BxLxD, mask), None


class Transformer(nn.Module):
  """`depth` blocks and a final LayerNorm.

  remat_policy (see REMAT_POLICIES) recomputes activations inside each block in the
  backward pass instead of storing them. scan_layers runs one block under nn.scan: a single
  compiled block (faster compiles, less code) whose params get a leading 'layers' axis of
  size depth (params 'layers/...' instead of 'block0/...', 'block1/...').
  """
  depth: int
  num_heads: int
  mlp_dim: int
  dtype: Dtype = jnp.float32
  attention_impl: str = 'auto'
  remat_policy: str = 'none'
  scan_layers: bool = False
  # KV-cache decoding (see Attention); `mask` is then ignored after the init call.
  decode: bool = False
  # LayerNorm epsilon and erf GELU: the reference TiTok layout (models/titok_reference.py).
  ln_eps: float = LN_EPS
  exact_gelu: bool = False

  @nn.compact
  def __call__(self, x_BxLxD, mask=None, keep=None):
    """Output [B, L, D]; with `keep=(start, stop)`, [B, stop - start, D]: the positions the
    caller uses. The last block then computes only those rows (see Block.keep); under
    scan_layers every layer is the same code, so all rows are computed and sliced."""
    if self.remat_policy not in REMAT_POLICIES:
      raise ValueError(f'remat_policy={self.remat_policy!r}; expected one of '
                       f'{sorted(REMAT_POLICIES)}')
    block_cls = _ScannedBlock if self.scan_layers else Block
    if self.remat_policy != 'none':
      # Under scan, CSE across iterations is impossible anyway; prevent_cse only costs.
      block_cls = nn.remat(block_cls, policy=REMAT_POLICIES[self.remat_policy],
                           prevent_cse=not self.scan_layers)
    args = (self.num_heads, self.mlp_dim, self.dtype, self.attention_impl, self.decode)
    norm = {'ln_eps': self.ln_eps, 'exact_gelu': self.exact_gelu}
    if self.scan_layers:
      scanned = nn.scan(block_cls, variable_axes={'params': 0}, split_rngs={'params': True},
                        in_axes=(nn.broadcast,), length=self.depth,
                        metadata_params={nn.PARTITION_NAME: 'layers'})
      x_BxLxD, _ = scanned(*args, **norm, name='layers')(x_BxLxD, mask)
      if keep is not None:
        x_BxLxD = x_BxLxD[:, slice(*keep)]
    else:
      for i in range(self.depth):
        last = keep if i == self.depth - 1 else None
        x_BxLxD = block_cls(*args, keep=last, **norm, name=f'block{i}')(x_BxLxD, mask)
    return layer_norm('ln_out', self.ln_eps)(x_BxLxD)


def sizes(cfg):
  """(width, depth, num_heads, mlp_dim) of a config's transformer dict (model.encoder, ...)."""
  return cfg['width'], cfg['depth'], cfg['num_heads'], cfg['mlp_ratio'] * cfg['width']


def posemb_init(*names):
  return nn.with_logical_partitioning(nn.initializers.normal(stddev=0.02), names)


def patchify(x_BxHxWxC, p):
  b, h, w, c = x_BxHxWxC.shape
  x = x_BxHxWxC.reshape(b, h // p, p, w // p, p, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(x_BxNxP, p, h, w, c):
  b = x_BxNxP.shape[0]
  x = x_BxNxP.reshape(b, h // p, w // p, p, p, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def stack_block_params(params):
  """Params of unscanned Transformers ('block0', 'block1', ...) in the scan_layers layout
  ('layers', each leaf stacked on a new leading axis); other entries are unchanged."""
  if not isinstance(params, dict):
    return params
  params = {k: stack_block_params(v) for k, v in params.items()}
  blocks = sorted((k for k in params if k.startswith('block') and k[5:].isdigit()),
                  key=lambda k: int(k[5:]))
  if not blocks:
    return params
  rest = {k: v for k, v in params.items() if k not in blocks}
  return {**rest, 'layers': jax.tree.map(lambda *xs: jnp.stack(xs), *[params[k]
                                                                       for k in blocks])}

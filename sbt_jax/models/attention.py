"""Softmax attention in three implementations with one signature.

- 'dot_product': jax.nn.dot_product_attention, the accelerator path: cuDNN's fused (flash)
  attention on a GPU where it applies (bfloat16/float16 operands, supported head sizes and
  masks), XLA's fused attention otherwise (TPU, float32).
- 'xla': the whole [B, H, L, S] score tensor at once (plain einsums and softmax).
- 'chunked': one example (or one group of its heads) at a time in a lax.map, with a custom
  VJP that recomputes the scores in the backward pass (flash-attention style, at example
  granularity). The scores of one iteration stay in cache, which on a CPU makes attention
  2-3x faster than 'xla' because the full score tensor is memory-bandwidth bound there.
  When one example's float32 scores [H, L, S] exceed SCORE_BLOCK_BYTES its heads are split
  into groups (see head_groups). Operands are laid out head-major once, outside the loop
  (k also transposed), so that every product in the loop is a row-major batched matmul.
'auto' picks 'chunked' on CPU and 'dot_product' elsewhere (cpu_kernels.enabled(), the model
code's one backend check).

Matmul operands are cast to `dtype` (float32 or bfloat16) and accumulate in float32; the
softmax and the output are float32. Masks are boolean, broadcastable to [B, H, L, S].
"""
import functools

import jax
import jax.numpy as jnp

from sbt_jax.models import cpu_kernels

IMPLS = ('auto', 'dot_product', 'xla', 'chunked')
_NEG = -1e30


def resolve_impl(impl: str) -> str:
  if impl not in IMPLS:
    raise ValueError(f'attention impl {impl!r}; expected one of {IMPLS}')
  if impl == 'auto':
    return 'chunked' if cpu_kernels.enabled() else 'dot_product'
  return impl


def _scaled_queries(q, dtype):
  """q / sqrt(K) in dtype: the softmax scale, applied once to the queries."""
  return (q * q.shape[-1] ** -0.5).astype(dtype)


def _one_block_fwd(q_hxLxK, kt_hxKxS, v_hxSxK, mask, dtype):
  """Output [h, L, K] and log-sum-exp [h, L] of one block (one example, one head group).

  q is already scaled by 1/sqrt(K); q, k and v are in `dtype`. Both products are plain
  row-major batched matmuls (k comes pre-transposed), so no operand is transposed inside the
  loop. One pass of exp over the scores: the unnormalised exp(s - max) goes into the PV
  matmul and the output rows are divided by the row sums afterwards ([L, K] instead of
  [L, S] work per head); jax.nn.logsumexp followed by exp(s - lse) would read the scores
  twice more and evaluate exp twice, which costs ~10% on a CPU.
  """
  s_hxLxS = jnp.einsum('hlk,hks->hls', q_hxLxK, kt_hxKxS, preferred_element_type=jnp.float32)
  if mask is not None:
    s_hxLxS = jnp.where(mask, s_hxLxS, _NEG)
  m_hxL = jnp.max(s_hxLxS, axis=-1)
  e_hxLxS = jnp.exp(s_hxLxS - m_hxL[..., None])
  l_hxL = jnp.sum(e_hxLxS, axis=-1)
  o_hxLxK = jnp.einsum('hls,hsk->hlk', e_hxLxS.astype(dtype), v_hxSxK,
                       preferred_element_type=jnp.float32)
  return o_hxLxK * (1.0 / l_hxL)[..., None], m_hxL + jnp.log(l_hxL)


def _one_block_bwd(q_hxLxK, qt_hxKxL, k_hxSxK, kt_hxKxS, v_hxSxK, mask_t, lse_hxL, do_hxLxK,
                   dot_hxKxL, delta_hxL, dtype):
  """dq^T [h, K, L], dk and dv [h, S, K] of one block, from recomputed probabilities.

  Everything is computed transposed ([S, L] scores): then all five products are row-major
  batched matmuls of operands prepared outside the loop. In the [L, S] orientation dk and dv
  contract over L, the scores' leading axis, and XLA:CPU transposes a [h, L, S] block inside
  the loop for each (S-128 bf16 attention forward+backward: 71 -> 63 ms per layer).
  """
  st_hxSxL = jnp.einsum('hsk,hkl->hsl', k_hxSxK, qt_hxKxL, preferred_element_type=jnp.float32)
  if mask_t is not None:
    st_hxSxL = jnp.where(mask_t, st_hxSxL, _NEG)
  pt_hxSxL = jnp.exp(st_hxSxL - lse_hxL[:, None, :])
  dv_hxSxK = jnp.einsum('hsl,hlk->hsk', pt_hxSxL.astype(dtype), do_hxLxK,
                        preferred_element_type=jnp.float32)
  dpt_hxSxL = jnp.einsum('hsk,hkl->hsl', v_hxSxK, dot_hxKxL, preferred_element_type=jnp.float32)
  dst_hxSxL = (pt_hxSxL * (dpt_hxSxL - delta_hxL[:, None, :])).astype(dtype)
  dk_hxSxK = jnp.einsum('hsl,hlk->hsk', dst_hxSxL, q_hxLxK, preferred_element_type=jnp.float32)
  dqt_hxKxL = jnp.einsum('hks,hsl->hkl', kt_hxKxS, dst_hxSxL,
                         preferred_element_type=jnp.float32)
  return dqt_hxKxL, dk_hxSxK, dv_hxSxK


def _map_examples(fn, *args):
  """lax.map over the batch axis; `None` arguments and broadcast (size-1) masks pass through."""
  b = args[0].shape[0]
  mapped = [a is not None and a.shape[0] == b for a in args]
  xs = tuple(a for a, m in zip(args, mapped) if m)
  fixed = [None if m else (a[0] if a is not None else None) for a, m in zip(args, mapped)]

  def body(x):
    it = iter(x)
    return fn(*[next(it) if m else f for m, f in zip(mapped, fixed)])
  return jax.lax.map(body, xs)


# One loop iteration's float32 scores [H/G, L, S] should fit in about this much memory (a
# little more than this CPU's 2 MiB per-core L2). S-128 (384 tokens, 8 heads: 4.5 MiB per
# example) runs 2 groups of 4 heads: attention forward about 20% faster, the S-128
# encode+decode 3-5% and the float32 train step about 4% (same-process A/Bs, 2-core CPU).
# Smaller blocks (4 or 8 groups there) were no faster.
SCORE_BLOCK_BYTES = 3 * 2**20


def head_groups(h, l, s):
  """The fewest head groups G (a divisor of H) whose float32 score block [H/G, L, S] takes
  at most SCORE_BLOCK_BYTES; H (one head per iteration) if none does."""
  for g in range(1, h + 1):
    if h % g == 0 and (h // g) * l * s * 4 <= SCORE_BLOCK_BYTES:
      return g
  return h


def _group(x_BxLxHxK, g, transposed=False):
  """[B, L, H, K] -> [B*G, H/G, L, K]: head-major, G head groups per example; with
  `transposed`, [B*G, H/G, K, L] (each head's [L, K] block transposed)."""
  b, l, h, k = x_BxLxHxK.shape
  x = x_BxLxHxK.reshape(b, l, g, h // g, k)
  x = x.transpose((0, 2, 3, 4, 1) if transposed else (0, 2, 3, 1, 4))
  return x.reshape((b * g, h // g) + x.shape[3:])


def _ungroup(x, g, transposed=False):
  """The inverse of _group: [B*G, H/G, L, K] (or [B*G, H/G, K, L] if `transposed`) ->
  [B, L, H, K]."""
  bg, h = x.shape[:2]
  l, k = x.shape[2:][::-1] if transposed else x.shape[2:]
  x = x.reshape(bg // g, g, *x.shape[1:])
  x = x.transpose((0, 4, 1, 2, 3) if transposed else (0, 3, 1, 2, 4))
  return x.reshape(bg // g, l, g * h, k)


def _split_mask(mask, b, h, g):
  """A 4D mask broadcastable to [B, H, L, S] -> broadcastable to [B*G, H/G, L, S]."""
  if mask is None or mask.shape[:2] == (1, 1):
    return mask  # the same for every iteration
  mh = mask.shape[1]
  tail = mask.shape[2:]
  mask = jnp.broadcast_to(mask, (b, mh) + tail)
  if mh == h:
    return mask.reshape((b * g, h // g) + tail)
  return jnp.broadcast_to(mask[:, None], (b, g, 1) + tail).reshape((b * g, 1) + tail)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def chunked_attention(q, k, v, mask, dtype):
  """q [B, L, H, K], k and v [B, S, H, K], mask None or 4D -> [B, L, H, K] float32."""
  return _chunked_fwd(q, k, v, mask, dtype)[0]


def _chunked_fwd(q, k, v, mask, dtype):
  """The loop runs over B*G blocks of head-major operands laid out once, outside it."""
  b, l, h, _ = q.shape
  g = head_groups(h, l, k.shape[1])
  o, lse = _map_examples(
      lambda *a: _one_block_fwd(*a, dtype), _group(_scaled_queries(q, dtype), g),
      _group(k.astype(dtype), g, transposed=True), _group(v.astype(dtype), g),
      _split_mask(mask, b, h, g))
  return _ungroup(o, g), (q, k, v, mask, o, lse)


def _chunked_bwd(dtype, res, do_BxLxHxK):
  q, k, v, mask, o, lse = res
  b, l, h, _ = q.shape
  g = head_groups(h, l, k.shape[1])
  qs, kd, dod = _scaled_queries(q, dtype), k.astype(dtype), do_BxLxHxK.astype(dtype)
  delta = jnp.sum(_group(do_BxLxHxK, g) * o, axis=-1)  # rowsum(dO * O) = rowsum(P * dP)
  mask = _split_mask(mask, b, h, g)
  mask_t = None if mask is None else jnp.swapaxes(mask, -1, -2)
  dqt, dk, dv = _map_examples(
      lambda *a: _one_block_bwd(*a, dtype), _group(qs, g), _group(qs, g, True), _group(kd, g),
      _group(kd, g, True), _group(v.astype(dtype), g), mask_t, lse, _group(dod, g),
      _group(dod, g, True), delta)
  dq = _ungroup(dqt, g, transposed=True) * q.shape[-1] ** -0.5
  return (dq.astype(q.dtype), _ungroup(dk, g).astype(k.dtype), _ungroup(dv, g).astype(v.dtype),
          None)


chunked_attention.defvjp(_chunked_fwd, _chunked_bwd)


def xla_attention(q, k, v, mask, dtype):
  scale = q.shape[-1] ** -0.5
  s_BxHxLxS = jnp.einsum('blhk,bshk->bhls', (q * scale).astype(dtype), k.astype(dtype),
                         preferred_element_type=jnp.float32)
  if mask is not None:
    s_BxHxLxS = jnp.where(mask, s_BxHxLxS, _NEG)
  p = jax.nn.softmax(s_BxHxLxS, axis=-1)
  return jnp.einsum('bhls,bshk->blhk', p.astype(dtype), v.astype(dtype),
                    preferred_element_type=jnp.float32)


def dot_product_attention(q, k, v, mask, dtype):
  """jax.nn.dot_product_attention on operands in `dtype`; its implementation=None picks cuDNN
  where the shapes, dtype and mask allow it and XLA otherwise. Output float32."""
  out = jax.nn.dot_product_attention(q.astype(dtype), k.astype(dtype), v.astype(dtype),
                                     mask=mask)
  return out.astype(jnp.float32)


def attention(q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, mask=None, *, dtype=jnp.float32,
              impl: str = 'auto'):
  """Multi-head attention output [B, L, H, K] in float32."""
  if mask is not None:
    mask = jnp.asarray(mask, bool)
    while mask.ndim < 4:
      mask = mask[None]
  impl = resolve_impl(impl)
  if impl == 'chunked':
    return chunked_attention(q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, mask, dtype)
  if impl == 'dot_product':
    return dot_product_attention(q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, mask, dtype)
  return xla_attention(q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, mask, dtype)

"""Softmax attention in two implementations with one signature.

- 'xla': the whole [B, H, L, S] score tensor at once (plain einsums and softmax); best on
  TPU/GPU, where XLA fuses it.
- 'chunked': one example (or one group of its heads) at a time in a lax.map, with a custom
  VJP that recomputes the scores in the backward pass (flash-attention style, at example
  granularity). The scores of one iteration stay in cache, which on a CPU makes attention
  2-3x faster than 'xla' because the full score tensor is memory-bandwidth bound there.
  When one example's float32 scores [H, L, S] exceed SCORE_BLOCK_BYTES its heads are split
  into groups (see head_groups).
'auto' picks 'chunked' on CPU and 'xla' elsewhere.

Matmul operands are cast to `dtype` (float32 or bfloat16) and accumulate in float32; the
softmax and the output are float32. Masks are boolean, broadcastable to [B, H, L, S].
"""
import functools

import jax
import jax.numpy as jnp

IMPLS = ('auto', 'xla', 'chunked')
_NEG = -1e30


def resolve_impl(impl: str) -> str:
  if impl not in IMPLS:
    raise ValueError(f'attention impl {impl!r}; expected one of {IMPLS}')
  if impl == 'auto':
    return 'chunked' if jax.default_backend() == 'cpu' else 'xla'
  return impl


def _scores(q_LxHxK, k_SxHxK, mask_HxLxS, dtype):
  scale = q_LxHxK.shape[-1] ** -0.5
  s_HxLxS = jnp.einsum('lhk,shk->hls', (q_LxHxK * scale).astype(dtype), k_SxHxK.astype(dtype),
                       preferred_element_type=jnp.float32)
  if mask_HxLxS is not None:
    s_HxLxS = jnp.where(mask_HxLxS, s_HxLxS, _NEG)
  return s_HxLxS


def _one_example_fwd(q, k, v, mask, dtype):
  """Output [L, H, K] and log-sum-exp [H, L] of one example.

  One pass of exp over the scores: the unnormalised exp(s - max) goes into the PV matmul and
  the output rows are divided by the row sums afterwards ([L, H, K] instead of [H, L, S]
  work). jax.nn.logsumexp followed by exp(s - lse) would read the scores twice more and
  evaluate exp twice; the score tensor is memory-bound on CPUs, so that costs ~10%.
  """
  s_HxLxS = _scores(q, k, mask, dtype)
  m_HxL = jnp.max(s_HxLxS, axis=-1)
  e_HxLxS = jnp.exp(s_HxLxS - m_HxL[..., None])
  l_HxL = jnp.sum(e_HxLxS, axis=-1)
  o_LxHxK = jnp.einsum('hls,shk->lhk', e_HxLxS.astype(dtype), v.astype(dtype),
                       preferred_element_type=jnp.float32)
  o_LxHxK = o_LxHxK * (1.0 / l_HxL).T[:, :, None]
  return o_LxHxK, m_HxL + jnp.log(l_HxL)


def _one_example_bwd(q, k, v, mask, o, lse_HxL, do_LxHxK, dtype):
  scale = q.shape[-1] ** -0.5
  p_HxLxS = jnp.exp(_scores(q, k, mask, dtype) - lse_HxL[..., None])
  dv = jnp.einsum('hls,lhk->shk', p_HxLxS.astype(dtype), do_LxHxK.astype(dtype),
                  preferred_element_type=jnp.float32)
  dp_HxLxS = jnp.einsum('lhk,shk->hls', do_LxHxK.astype(dtype), v.astype(dtype),
                        preferred_element_type=jnp.float32)
  delta_HxL = jnp.einsum('lhk,lhk->hl', do_LxHxK, o)
  ds_HxLxS = (p_HxLxS * (dp_HxLxS - delta_HxL[..., None])).astype(dtype)
  dq = jnp.einsum('hls,shk->lhk', ds_HxLxS, k.astype(dtype),
                  preferred_element_type=jnp.float32) * scale
  dk = jnp.einsum('hls,lhk->shk', ds_HxLxS, q.astype(dtype),
                  preferred_element_type=jnp.float32) * scale
  return dq, dk, dv


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


def _split_heads(x_BxLxHxK, g):
  """[B, L, H, K] -> [B*G, L, H/G, K] (group-major within an example)."""
  b, l, h, k = x_BxLxHxK.shape
  return (x_BxLxHxK.reshape(b, l, g, h // g, k).transpose(0, 2, 1, 3, 4)
          .reshape(b * g, l, h // g, k))


def _merge_heads(x_GBxLxhxK, g):
  bg, l, h, k = x_GBxLxhxK.shape
  return (x_GBxLxhxK.reshape(bg // g, g, l, h, k).transpose(0, 2, 1, 3, 4)
          .reshape(bg // g, l, g * h, k))


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


def chunked_attention(q, k, v, mask, dtype):
  """q [B, L, H, K], k and v [B, S, H, K], mask None or 4D -> [B, L, H, K] float32."""
  b, l, h, _ = q.shape
  g = head_groups(h, l, k.shape[1])
  if g == 1:
    return _chunked(q, k, v, mask, dtype)
  out = _chunked(_split_heads(q, g), _split_heads(k, g), _split_heads(v, g),
                 _split_mask(mask, b, h, g), dtype)
  return _merge_heads(out, g)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _chunked(q, k, v, mask, dtype):
  return _map_examples(lambda *a: _one_example_fwd(*a, dtype)[0], q, k, v, mask)


def _chunked_fwd(q, k, v, mask, dtype):
  o, lse = _map_examples(lambda *a: _one_example_fwd(*a, dtype), q, k, v, mask)
  return o, (q, k, v, mask, o, lse)


def _chunked_bwd(dtype, res, do):
  q, k, v, mask, o, lse = res
  dq, dk, dv = _map_examples(lambda *a: _one_example_bwd(*a, dtype), q, k, v, mask, o, lse,
                             do)
  return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None


_chunked.defvjp(_chunked_fwd, _chunked_bwd)


def xla_attention(q, k, v, mask, dtype):
  scale = q.shape[-1] ** -0.5
  s_BxHxLxS = jnp.einsum('blhk,bshk->bhls', (q * scale).astype(dtype), k.astype(dtype),
                         preferred_element_type=jnp.float32)
  if mask is not None:
    s_BxHxLxS = jnp.where(mask, s_BxHxLxS, _NEG)
  p = jax.nn.softmax(s_BxHxLxS, axis=-1)
  return jnp.einsum('bhls,bshk->blhk', p.astype(dtype), v.astype(dtype),
                    preferred_element_type=jnp.float32)


def attention(q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, mask=None, *, dtype=jnp.float32,
              impl: str = 'auto'):
  """Multi-head attention output [B, L, H, K] in float32."""
  if mask is not None:
    mask = jnp.asarray(mask, bool)
    while mask.ndim < 4:
      mask = mask[None]
  if resolve_impl(impl) == 'chunked':
    return chunked_attention(q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, mask, dtype)
  return xla_attention(q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, mask, dtype)

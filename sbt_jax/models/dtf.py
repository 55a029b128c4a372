"""Dynamic Token Filtering (TaTok): which patch tokens an image keeps at information-loss rate r.

Per image, patches are ranked by the estimated conditional entropy of their code given the
global tokens (highest first). The first k in that order are kept, k the smallest count whose
share of the image's total entropy reaches 1 - r: r = 0 keeps every patch, r = 1 keeps none.
Dropped positions become the decoder's mask tokens.

The ranking is a function of the global ids alone, so a kept set is stored as the kept patch
ids in rank order ("packed", variable length): the decoder recomputes the ranks from the
global ids and puts packed id j on the rank-j patch. Batches of packed sequences are padded
to a common length M with a validity mask.

Shapes: B batch, N patches, M packed length (any M; entries past the kept count are padding).
"""
import jax
import jax.numpy as jnp


def entropy_from_logits(logits_BxNxK):
  """Entropy (nats) of softmax(logits) per position, float32."""
  logp = jax.nn.log_softmax(logits_BxNxK.astype(jnp.float32), axis=-1)
  return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def rank_order(entropy_BxN):
  """Patch indices by decreasing entropy (ties: lower index first), B x N."""
  return jnp.argsort(-entropy_BxN, axis=-1, stable=True)


def num_kept(entropy_BxN, rate_B):
  """Patches kept per image (B,): rank k is kept while the entropy share of ranks < k is
  below 1 - r. r <= 0 keeps all N (exact, whatever the float rounding of the cumsum)."""
  order_BxN = rank_order(entropy_BxN)
  sorted_BxN = jnp.take_along_axis(jnp.maximum(entropy_BxN, 0.0), order_BxN, axis=-1)
  total_B = jnp.sum(sorted_BxN, axis=-1)
  before_BxN = jnp.cumsum(sorted_BxN, axis=-1) - sorted_BxN
  keep_BxN = before_BxN < (1.0 - rate_B[:, None]) * total_B[:, None]
  n = entropy_BxN.shape[-1]
  return jnp.where(rate_B <= 0, n, jnp.sum(keep_BxN, axis=-1)).astype(jnp.int32)


def keep_mask(entropy_BxN, rate_B):
  """(keep B x N bool in patch order, rank order B x N, kept count B)."""
  order_BxN = rank_order(entropy_BxN)
  k_B = num_kept(entropy_BxN, rate_B)
  kept_by_rank_BxN = jnp.arange(entropy_BxN.shape[-1])[None] < k_B[:, None]
  keep_BxN = _scatter_rows(jnp.zeros_like(kept_by_rank_BxN), order_BxN, kept_by_rank_BxN)
  return keep_BxN, order_BxN, k_B


def pack(ids_BxN, order_BxN, k_B, length: int):
  """Kept ids in rank order, padded to `length`: (packed ids B x M, valid B x M).
  Padding entries hold 0 and valid=False."""
  ranked_BxN = jnp.take_along_axis(ids_BxN, order_BxN, axis=-1)
  n = ids_BxN.shape[-1]
  if length > n:
    ranked_BxN = jnp.pad(ranked_BxN, ((0, 0), (0, length - n)))
  valid_BxM = jnp.arange(length)[None] < k_B[:, None]
  return jnp.where(valid_BxM, ranked_BxN[:, :length], 0), valid_BxM


def unpack(packed_BxM, valid_BxM, order_BxN):
  """Inverse of `pack`: (ids B x N in patch order, 0 where dropped; keep B x N)."""
  b, n = order_BxN.shape
  m = min(packed_BxM.shape[1], n)
  valid_BxM = valid_BxM[:, :m] & (valid_BxM[:, :m].cumprod(axis=1) > 0)  # a prefix only
  pos_BxM = order_BxN[:, :m]
  ids_BxN = _scatter_rows(jnp.zeros((b, n), packed_BxM.dtype), pos_BxM,
                          jnp.where(valid_BxM, packed_BxM[:, :m], 0))
  keep_BxN = _scatter_rows(jnp.zeros((b, n), bool), pos_BxM, valid_BxM)
  return ids_BxN, keep_BxN


def _scatter_rows(base_BxN, index_BxM, values_BxM):
  """base with base[b, index[b, m]] = values[b, m] (indices distinct within a row)."""
  rows_BxM = jnp.broadcast_to(jnp.arange(base_BxN.shape[0])[:, None], index_BxM.shape)
  return base_BxN.at[rows_BxM, index_BxM].set(values_BxM)

"""Dead-code restarts for a vector quantizer, as pure functions the train step calls.

An EMA of each code's share of assignments is kept in the train state; every `every`
steps, codes whose share fell below `threshold / K` are moved onto randomly chosen encoder
outputs of the current batch (their usage reset to twice the threshold), so a codebook that
collapsed onto a few entries recovers. Runs under jit; the codebook stays replicated.
"""
import jax
import jax.numpy as jnp


def init_usage(codebook_size: int):
  """Zero: a code unused until the first restart step counts as dead there."""
  return jnp.zeros((codebook_size,), jnp.float32)


def update_usage(usage_K, ids, decay: float):
  """EMA of the fraction of tokens assigned to each code."""
  counts_K = jnp.zeros_like(usage_K).at[ids.reshape(-1)].add(1.0)
  return decay * usage_K + (1.0 - decay) * counts_K / ids.size


def restart(codebook_KxT, usage_K, z_NxT, rng, *, threshold: float, enabled):
  """(codebook, usage, dead_K: which codes moved); no-op unless `enabled` (a traced bool)."""
  k = codebook_KxT.shape[0]
  dead_K = jnp.logical_and(enabled, usage_K < threshold / k)
  picks_K = jax.random.randint(rng, (k,), 0, z_NxT.shape[0])
  new_codebook = jnp.where(dead_K[:, None], z_NxT[picks_K].astype(codebook_KxT.dtype),
                           codebook_KxT)
  # A restarted code that stays unused decays back under the threshold in ~ln(2)/(1-decay)
  # steps and is restarted again at the next restart step after that.
  new_usage = jnp.where(dead_K, 2.0 * threshold / k, usage_K)
  return new_codebook, new_usage, dead_K

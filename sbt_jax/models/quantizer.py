"""Vector quantizer: with an l2-normalised codebook (TiTok / ViT-VQGAN style, the default),
or Euclidean (`l2_norm=False`: the reference's single-stage TiTok-BL/SL weights).

Always runs in float32, whatever the compute dtype of the transformers around it.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp


def l2_normalize(x, axis=-1, eps=1e-6):
  return x * jax.lax.rsqrt(jnp.sum(x * x, axis=axis, keepdims=True) + eps)


def codebook_stats(ids, codebook_size, mask_B=None):
  """Usage statistics of a batch of ids: fraction of codes used and perplexity."""
  onehot = jax.nn.one_hot(ids.reshape(ids.shape[0], -1), codebook_size, dtype=jnp.float32)
  if mask_B is not None:
    onehot = onehot * mask_B[:, None, None]
  counts_K = onehot.sum(axis=(0, 1))
  probs_K = counts_K / jnp.maximum(counts_K.sum(), 1.0)
  entropy = -jnp.sum(jnp.where(probs_K > 0, probs_K * jnp.log(probs_K), 0.0))
  return {
      'codebook_usage': jnp.mean((counts_K > 0).astype(jnp.float32)),
      'codebook_perplexity': jnp.exp(entropy),
  }


def vq_terms(z, q):
  """(codebook loss ||q - sg(z)||^2, commitment loss ||sg(q) - z||^2), means over all.

  Computed where q and z are made (before the straight-through output): reverse-mode
  accumulates z's gradient contributions in that order, which the golden losses pin.
  """
  codebook = jnp.mean(jnp.square(q - jax.lax.stop_gradient(z)))
  commit = jnp.mean(jnp.square(jax.lax.stop_gradient(q) - z))
  return codebook, commit


class VectorQuantizer(nn.Module):
  """Nearest code by cosine similarity (l2_norm: z and codes l2-normalised) or by Euclidean
  distance; straight-through gradient. Returns its two VQ terms; losses/quantizer.py weighs
  them (codebook + commitment_cost * commitment)."""
  codebook_size: int
  token_dim: int
  l2_norm: bool = True

  def setup(self):
    # Euclidean codes start as the reference's, uniform in +-1/K (taming's VQ).
    k = self.codebook_size
    init = (nn.initializers.normal(1.0) if self.l2_norm else
            lambda rng, shape, dtype: jax.random.uniform(rng, shape, dtype, -1 / k, 1 / k))
    self.codebook = self.param(
        'codebook', nn.with_logical_partitioning(init, ('vocab', 'token')),
        (self.codebook_size, self.token_dim), jnp.float32)

  def normalized_codebook(self):
    """The code vectors a token takes: l2-normalised, or as stored without l2_norm."""
    return l2_normalize(self.codebook) if self.l2_norm else self.codebook

  def lookup(self, ids):
    """ids (any shape) -> code vectors (shape + (token_dim,))."""
    return jnp.take(self.normalized_codebook(), ids, axis=0)

  def __call__(self, z_BxGxT):
    z_BxGxT = z_BxGxT.astype(jnp.float32)
    codes_KxT = self.normalized_codebook()
    if self.l2_norm:
      z_BxGxT = l2_normalize(z_BxGxT)
      sim_BxGxK = jnp.einsum('bgt,kt->bgk', z_BxGxT, codes_KxT)
    else:  # -||z - e||^2 up to the constant ||z||^2
      sim_BxGxK = (2 * jnp.einsum('bgt,kt->bgk', z_BxGxT, codes_KxT)
                   - jnp.sum(codes_KxT * codes_KxT, -1))
    ids_BxG = jnp.argmax(sim_BxGxK, axis=-1)
    q_BxGxT = jnp.take(codes_KxT, ids_BxG, axis=0)
    codebook_loss, commit_loss = vq_terms(z_BxGxT, q_BxGxT)
    q_st_BxGxT = z_BxGxT + jax.lax.stop_gradient(q_BxGxT - z_BxGxT)
    aux = {
        'ids': ids_BxG,
        'z': z_BxGxT,  # encoder outputs as compared (dead-code restarts draw from these)
        # Weighed by losses/quantizer.py (commitment_cost, quantizer_weight).
        'codebook_loss': codebook_loss,
        'commit_loss': commit_loss,
    }
    return q_st_BxGxT, aux


# model.quantizer; 'vae' (models/vae.py: continuous latents) is TiTok's only.
KINDS = ('vq', 'fsq', 'vae')


def build(kind: str, codebook_size: int, token_dim: int, l2_norm: bool = True):
  """The quantizer of `kind` (config model.quantizer): 'vq' (this file; `l2_norm`: config
  model.vq_l2_norm) or 'fsq'."""
  from sbt_jax.models import fsq  # pylint: disable=g-import-not-at-top (fsq imports nothing of ours)
  if kind == 'fsq':
    return fsq.FSQuantizer(codebook_size, token_dim)
  return VectorQuantizer(codebook_size, token_dim, l2_norm)

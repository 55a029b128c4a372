"""The VAE bottleneck of bytedance/1d-tokenizer's TiTok VAE tokenizers (model.quantizer=
'vae'; its DiagonalGaussianDistribution): the encoder emits 2T channels per token, the mean
then the log-variance (clipped to [-30, 20]); training decodes mean + std * noise, everything
else the mean (the reference's `mode()`; its `encode` samples). KL to N(0, I), summed over
tokens and channels, averaged over images (its kl(), summed / batch), weighted by
loss.kl_weight. Continuous latents: no ids, no codebook, no generator over ids.

Shapes: B batch, G tokens, T token_dim.
"""
import flax.linen as nn
import jax.numpy as jnp

LOGVAR_RANGE = (-30.0, 20.0)


class DiagonalGaussian(nn.Module):
  """z [B, G, 2T] -> (latents [B, G, T], aux with 'mean', 'logvar', 'kl'); no params."""
  token_dim: int

  def __call__(self, z_BxGx2T, noise_BxGxT=None):
    z_BxGx2T = z_BxGx2T.astype(jnp.float32)
    mean_BxGxT, logvar_BxGxT = jnp.split(z_BxGx2T, 2, axis=-1)
    logvar_BxGxT = jnp.clip(logvar_BxGxT, *LOGVAR_RANGE)
    latents_BxGxT = mean_BxGxT
    if noise_BxGxT is not None:
      latents_BxGxT = mean_BxGxT + jnp.exp(0.5 * logvar_BxGxT) * noise_BxGxT
    kl_B = 0.5 * jnp.sum(jnp.square(mean_BxGxT) + jnp.exp(logvar_BxGxT) - 1.0 - logvar_BxGxT,
                         axis=(1, 2))
    return latents_BxGxT, {'mean': mean_BxGxT, 'logvar': logvar_BxGxT, 'kl': jnp.mean(kl_B)}

"""Reconstruction: w.l1 * L1 + w.l2 * L2 + w.perceptual_weight * perceptual (the nets of
w.perceptual, losses/perceptual.py), images in [-1, 1]."""
import jax.numpy as jnp

from sbt_jax.losses import perceptual


def reconstruction_loss(recon_BxHxWxC, x_BxHxWxC, frozen, w, dtype, prefix=''):
  """(loss, metrics named prefix + term) with the config.loss weights `w`."""
  l1 = jnp.mean(jnp.abs(recon_BxHxWxC - x_BxHxWxC))
  l2 = jnp.mean(jnp.square(recon_BxHxWxC - x_BxHxWxC))
  loss = w.l1_weight * l1 + w.l2_weight * l2
  metrics = {f'{prefix}l1': l1, f'{prefix}l2': l2}
  if w.perceptual_weight > 0:
    value, parts = perceptual.perceptual_loss(frozen, recon_BxHxWxC, x_BxHxWxC, w.perceptual,
                                              dtype)
    loss = loss + w.perceptual_weight * value
    metrics.update({f'{prefix}{k}': v for k, v in parts.items()})
  return loss, metrics

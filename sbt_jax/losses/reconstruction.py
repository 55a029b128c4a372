"""Reconstruction: w.l1 * L1 + w.l2 * L2 (+ w.lpips * LPIPS), images in [-1, 1]."""
import jax.numpy as jnp

from sbt_jax.losses import perceptual


def reconstruction_loss(recon_BxHxWxC, x_BxHxWxC, frozen, w, dtype, prefix=''):
  """(loss, metrics named prefix + term) with the config.loss weights `w`."""
  l1 = jnp.mean(jnp.abs(recon_BxHxWxC - x_BxHxWxC))
  l2 = jnp.mean(jnp.square(recon_BxHxWxC - x_BxHxWxC))
  loss = w.l1_weight * l1 + w.l2_weight * l2
  metrics = {f'{prefix}l1': l1, f'{prefix}l2': l2}
  if w.lpips_weight > 0:
    lpips = perceptual.lpips_loss(frozen['lpips'], recon_BxHxWxC, x_BxHxWxC, dtype)
    loss = loss + w.lpips_weight * lpips
    metrics[f'{prefix}lpips'] = lpips
  return loss, metrics

"""Mask-ratio schedules (MaskGIT training and decoding) and guidance-scale schedules."""
import math

import jax.numpy as jnp


def mask_ratio(u, schedule: str = 'arccos'):
  """Fraction of tokens masked at u in [0, 1]: 1 at u = 0, 0 at u = 1.

  Training draws u ~ U(0, 1); decoding uses u = (step + 1) / num_steps. 'arccos' is
  arccos(u) / (pi / 2) (MaskGIT's and TiTok's training schedule; it masks more often than
  'linear'), 'cosine' is cos(pi u / 2) (MaskGIT's decoding schedule), 'linear' is 1 - u.
  """
  u = jnp.asarray(u, jnp.float32)
  if schedule == 'arccos':
    return jnp.arccos(jnp.clip(u, -1.0, 1.0)) / (math.pi / 2)
  if schedule == 'cosine':
    return jnp.cos(math.pi / 2 * u)
  if schedule == 'linear':
    return 1.0 - u
  raise ValueError(f'mask schedule {schedule!r}; expected arccos, cosine or linear')


def guidance_weight(t, schedule: str = 'constant', power: float = 2.75):
  """w(t) at t = step / num_steps in [0, 1): the guidance scale is guidance_scale * w(t).

  'constant': 1. 'linear': t (no guidance at the first step, rising). 'power-cosine'
  (MDT / TiTok): (1 - cos(pi t^power)) / 2, near 0 for the early steps, then rising to 1.
  """
  t = jnp.asarray(t, jnp.float32)
  if schedule == 'constant':
    return jnp.ones_like(t)
  if schedule == 'linear':
    return t
  if schedule == 'power-cosine':
    return (1.0 - jnp.cos(math.pi * t ** power)) / 2.0
  raise ValueError(f'guidance schedule {schedule!r}; expected constant, linear or '
                   'power-cosine')


def guided_logits(cond_BxLxV, uncond_BxLxV, scale):
  """Classifier-free guidance: cond + scale * (cond - uncond)."""
  return cond_BxLxV + scale * (cond_BxLxV - uncond_BxLxV)

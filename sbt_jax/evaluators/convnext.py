"""ConvNeXt (torchvision's layout) in Flax, for the reference's ConvNeXt-S perceptual loss.

  params = convnext.load_params('convnext_small-0c510722.pth')  # or a converted .npz
  logits_Bx1000 = convnext.logits(params, convnext.imagenet_input(images_BxHxWxC))

torchvision's `convnext_small`: a 4x4 stride-4 stem conv + LayerNorm; stages of
[3, 3, 27, 3] blocks at [96, 192, 384, 768] channels, each block a 7x7 depthwise conv,
LayerNorm, Linear 4x, exact GELU, Linear, times a learned per-channel layer scale, plus the
input (stochastic depth is the identity at inference); between stages LayerNorm + a 2x2
stride-2 conv; global average pool, LayerNorm, Linear to the 1,000 ImageNet logits. Every
LayerNorm has eps 1e-6. Convolutions and matmuls run at Precision.HIGHEST.
The weights are a file the user supplies (torchvision's ImageNet-1k checkpoint); nothing
is downloaded. Parity with torchvision: tests/golden/reference_convnext.py.

Shapes: B batch, H x W image, F channels.
"""
import functools
from typing import Any, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sbt_jax.evaluators import torch_checkpoint

# name -> (blocks per stage, channels per stage); torchvision's builders.
SIZES = {
    'convnext_tiny': ((3, 3, 9, 3), (96, 192, 384, 768)),
    'convnext_small': ((3, 3, 27, 3), (96, 192, 384, 768)),
    'convnext_base': ((3, 3, 27, 3), (128, 256, 512, 1024)),
}
NUM_CLASSES = 1000
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_EPS = 1e-6
_PRECISION = jax.lax.Precision.HIGHEST


def _precision(dtype):
  return _PRECISION if jnp.dtype(dtype) == jnp.float32 else None


def _conv(features, kernel, stride, name, dtype, groups=1):
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding='SAME' if stride == 1 else 'VALID', feature_group_count=groups,
                 dtype=dtype, precision=_precision(dtype), name=name)


def _dense(features, name, dtype):
  return nn.Dense(features, dtype=dtype, precision=_precision(dtype), name=name)


class Block(nn.Module):
  """torchvision's CNBlock (dwconv -> LN -> Linear -> GELU -> Linear) * scale + input."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BxHxWxF):
    h = _conv(self.features, 7, 1, 'dwconv', self.dtype, groups=self.features)(x_BxHxWxF)
    h = nn.LayerNorm(epsilon=_EPS, name='norm')(h)
    h = nn.gelu(_dense(4 * self.features, 'fc1', self.dtype)(h), approximate=False)
    h = _dense(self.features, 'fc2', self.dtype)(h)
    scale = self.param('layer_scale', nn.initializers.constant(1e-6), (self.features,))
    return x_BxHxWxF + scale * h


class ConvNeXt(nn.Module):
  """Images B x H x W x 3 (ImageNet-normalised) -> B x 1000 logits."""
  depths: Sequence[int] = SIZES['convnext_small'][0]
  widths: Sequence[int] = SIZES['convnext_small'][1]
  num_classes: int = NUM_CLASSES
  dtype: Any = jnp.float32  # compute dtype of convs and matmuls (float32: Precision.HIGHEST)

  @nn.compact
  def __call__(self, x_BxHxWx3):
    h = _conv(self.widths[0], 4, 4, 'stem_conv', self.dtype)(x_BxHxWx3)
    h = nn.LayerNorm(epsilon=_EPS, name='stem_norm')(h)
    for s, (depth, width) in enumerate(zip(self.depths, self.widths)):
      if s:
        h = nn.LayerNorm(epsilon=_EPS, name=f'down{s}_norm')(h)
        h = _conv(width, 2, 2, f'down{s}_conv', self.dtype)(h)
      for b in range(depth):
        h = Block(width, self.dtype, name=f'stage{s}_block{b}')(h)
    pooled_BxF = jnp.mean(h, axis=(1, 2))
    pooled_BxF = nn.LayerNorm(epsilon=_EPS, name='head_norm')(pooled_BxF)
    return _dense(self.num_classes, 'head', self.dtype)(pooled_BxF)


# A ConvNeXt weights file that is unreadable or does not match the network.
WeightsError = torch_checkpoint.WeightsFileError


def model_for(name: str) -> ConvNeXt:
  depths, widths = SIZES[name]
  return ConvNeXt(depths=depths, widths=widths)


# --- torchvision names <-> Flax names ---

def _flax_name_of_torch(parts: list[str]) -> list[str] | None:
  """features.<i>.<j>... / classifier.<k> -> Flax path (None when not a parameter here)."""
  if parts[0] == 'classifier':
    return [{'0': 'head_norm', '2': 'head'}.get(parts[1], parts[1])] + parts[2:]
  if parts[0] != 'features' or len(parts) < 3 or not parts[1].isdigit():
    return None
  i = int(parts[1])
  if i == 0:
    return [{'0': 'stem_conv', '1': 'stem_norm'}.get(parts[2], parts[2])] + parts[3:]
  if i % 2 == 0:
    s = i // 2
    return [{'0': f'down{s}_norm', '1': f'down{s}_conv'}.get(parts[2], parts[2])] + parts[3:]
  s, block = (i - 1) // 2, parts[2]
  if len(parts) < 5 and parts[3:] != ['layer_scale']:
    return None  # not a block parameter: reported as unexpected by name
  if parts[3] == 'layer_scale':
    return [f'stage{s}_block{block}', 'layer_scale']
  layer = {'0': 'dwconv', '2': 'norm', '3': 'fc1', '5': 'fc2'}.get(parts[4], parts[4])
  return [f'stage{s}_block{block}', layer] + parts[5:]


def torch_to_flax(state_dict: dict) -> dict[str, np.ndarray]:
  """torchvision ConvNeXt state dict -> {'stage0_block0/dwconv/kernel': HWIO array, ...}.

  Names that do not map pass through ('.' -> '/') so a mismatch is reported by name."""
  flat = {}
  for name, value in state_dict.items():
    parts = name.removeprefix('module.').split('.')
    value = np.asarray(value)
    mapped = _flax_name_of_torch(parts)
    if mapped is None:
      flat['/'.join(parts)] = value
      continue
    leaf = mapped[-1]
    if leaf == 'weight' and value.ndim == 4:
      mapped[-1], value = 'kernel', value.transpose(2, 3, 1, 0)
    elif leaf == 'weight' and value.ndim == 2:
      mapped[-1], value = 'kernel', value.T
    elif leaf == 'weight':  # LayerNorm
      mapped[-1] = 'scale'
    elif leaf == 'layer_scale':
      value = value.reshape(-1)  # torch keeps it as F x 1 x 1
    flat['/'.join(mapped)] = value
  return flat


@functools.lru_cache(maxsize=4)
def param_shapes(name: str = 'convnext_small') -> dict[str, tuple[int, ...]]:
  """{'stem_conv/kernel': (4, 4, 3, 96), ...} in the network's definition order."""
  dummy = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
  abstract = jax.eval_shape(model_for(name).init, jax.random.key(0), dummy)['params']
  return {k: tuple(v.shape) for k, v in
          flax.traverse_util.flatten_dict(flax.core.unfreeze(abstract), sep='/').items()}


_HINT = ("expected torchvision's ImageNet-1k ConvNeXt weights (convnext_small-0c510722.pth) "
         'or their conversion by `python -m sbt_jax.tools.convert_convnext`')


def load_flat_params(path: str, name: str = 'convnext_small') -> dict[str, np.ndarray]:
  """Reads, converts and checks a weights file -> {'a/b/c': float32 array}."""
  what = 'ConvNeXt weights'
  flat = torch_checkpoint.read_weights(
      path, torch_to_flax, what=what,
      how="the ConvNeXt-S perceptual loss needs torchvision's convnext_small-0c510722.pth, "
          'or an .npz from `python -m sbt_jax.tools.convert_convnext`')
  return torch_checkpoint.checked_params(flat, param_shapes(name), path, what, _HINT)


def load_params(path: str, name: str = 'convnext_small') -> dict:
  """The nested params tree (numpy float32) for `logits`."""
  return flax.traverse_util.unflatten_dict(load_flat_params(path, name), sep='/')


def architecture(params) -> tuple[tuple[int, ...], tuple[int, ...], int]:
  """(depths, widths, num_classes) of a params tree (static under jit: keys and shapes)."""
  depths, widths = [], []
  while f'stage{len(depths)}_block0' in params:
    s = len(depths)
    depths.append(sum(1 for k in params if k.startswith(f'stage{s}_block')))
    widths.append(params[f'stage{s}_block0']['layer_scale'].shape[0])
  return tuple(depths), tuple(widths), params['head']['kernel'].shape[-1]


def logits(params, images_BxHxWx3, dtype=jnp.float32):
  """Pure and jittable: B x num_classes logits of ImageNet-normalised images (the network's
  size is read from the params)."""
  depths, widths, num_classes = architecture(params)
  model = ConvNeXt(depths=depths, widths=widths, num_classes=num_classes, dtype=dtype)
  return model.apply({'params': params}, images_BxHxWx3)


def imagenet_input(images_BxHxWxC, size: int = 224):
  """Images in [-1, 1] (1 or 3 channels) -> the reference's ConvNeXt input: [0, 1], bilinear
  antialiased resize to size x size (torch's interpolate(antialias=True,
  align_corners=False)), grey repeated to RGB, ImageNet mean/std normalised."""
  x = (images_BxHxWxC.astype(jnp.float32) + 1.0) / 2.0
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  b, h, w, c = x.shape
  if (h, w) != (size, size):
    x = jax.image.resize(x, (b, size, size, c), 'bilinear', antialias=True)
  return (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)

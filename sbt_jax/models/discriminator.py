"""A patch discriminator for the adversarial tokenizer recipe (issue 18), laid out as
bytedance/1d-tokenizer's `NLayerDiscriminator` (MaskBit's improved discriminator):

  5x5 conv -> LeakyReLU(0.1)
  num_stages x [3x3 conv (channels x2 after the first) -> blur downsample (stride 2)
                -> GroupNorm(32) -> LeakyReLU(0.1)]
  adaptive max pool to 16 x 16 -> 1x1 conv -> LeakyReLU(0.1) -> 5x5 conv to 1 logit

Input images NHWC in the range the caller trains it on (trainers/adversarial.py feeds
[0, 1], as the reference); output B x 16 x 16 x 1 logits (one per patch). Stride-1 convs pad 'SAME' (odd kernels, so as PyTorch's symmetric
padding). Params are float32; `dtype` is the compute dtype of the convs.

Shapes: B batch, H x W x C image, F feature channels.
"""
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Binomial taps of each blur kernel size (the reference's BLUR_KERNEL_MAP).
BLUR_TAPS = {3: (1, 2, 1), 4: (1, 3, 3, 1), 5: (1, 4, 6, 4, 1)}


def blur_downsample(x_BxHxWxF, taps: Sequence[int]):
  """Depthwise blur with the normalised outer product of `taps`, stride 2.

  Padding is TF 'SAME' for a 4-tap, stride-2 window whatever the taps (as the reference:
  total max((ceil(i/2) - 1) * 2 + 4 - i, 0), the smaller half first), so an even side i
  becomes i / 2 with 3 or 4 taps and i / 2 - 1 with 5. Computed as two separable passes of
  strided slices times taps (the same sums as the depthwise conv, which XLA's CPU backend
  differentiates ~100x slower)."""
  k1 = np.asarray(taps, np.float64) / np.sum(taps)  # outer(k1, k1) sums to 1

  def blur_axis(x, axis):
    size = x.shape[axis]
    total = max((math.ceil(size / 2) - 1) * 2 + 4 - size, 0)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (total // 2, total - total // 2)
    x = jnp.pad(x, pad)
    out = (x.shape[axis] - len(k1)) // 2 + 1
    return sum(float(w) * jax.lax.slice_in_dim(x, i, i + 2 * (out - 1) + 1, 2, axis)
               for i, w in enumerate(k1))

  return blur_axis(blur_axis(x_BxHxWxF, 1), 2)


def adaptive_max_pool(x_BxHxWxF, out: int):
  """PyTorch's AdaptiveMaxPool2d((out, out)): output cell i takes the max over input rows
  floor(i H / out) .. ceil((i + 1) H / out) - 1 (and the same for columns); smaller inputs
  are repeated, larger ones pooled."""

  def pool(x, axis):
    size = x.shape[axis]
    if size % out == 0:  # non-overlapping windows of size / out
      shape = x.shape[:axis] + (out, size // out) + x.shape[axis + 1:]
      return jnp.max(x.reshape(shape), axis=axis + 1)
    if out % size == 0:  # each input row repeated out / size times
      return jnp.repeat(x, out // size, axis=axis)
    starts = [(i * size) // out for i in range(out)]
    ends = [-(-((i + 1) * size) // out) for i in range(out)]
    return jnp.stack([jnp.max(jax.lax.slice_in_dim(x, s, e, axis=axis), axis=axis)
                      for s, e in zip(starts, ends)], axis=axis)

  return pool(pool(x_BxHxWxF, 1), 2)


def _conv(features, kernel, name, dtype, shard=True):
  axes = (None, None, None, 'embed' if shard else None)
  return nn.Conv(features, (kernel, kernel), padding='SAME', dtype=dtype, name=name,
                 kernel_init=nn.with_logical_partitioning(
                     nn.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform'), axes),
                 bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(),
                                                        axes[-1:]))


class NLayerDiscriminator(nn.Module):
  """Patch logits of images: B x H x W x C -> B x pool x pool x 1."""
  hidden_channels: int = 128  # F of the first stage; stage s has F * 2 ** s
  num_stages: int = 3
  blur_taps: int = 4  # 3, 4 or 5 (BLUR_TAPS)
  num_groups: int = 32  # GroupNorm groups; must divide every stage's channels
  pool_size: int = 16  # the adaptive max pool's output side
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BxHxWxC):
    act = lambda h: nn.leaky_relu(h, negative_slope=0.1)  # pylint: disable=unnecessary-lambda-assignment
    h = act(_conv(self.hidden_channels, 5, 'block_in', self.dtype)(
        x_BxHxWxC.astype(jnp.float32)))
    for s in range(self.num_stages):
      f = self.hidden_channels * 2 ** s
      h = _conv(f, 3, f'stage{s}_conv', self.dtype)(h)
      h = blur_downsample(h, BLUR_TAPS[self.blur_taps])
      h = nn.GroupNorm(num_groups=self.num_groups, epsilon=1e-5, dtype=jnp.float32,
                       name=f'stage{s}_norm',
                       scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(),
                                                               ('embed',)),
                       bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(),
                                                              ('embed',)))(h)
      h = act(h)
    h = adaptive_max_pool(h, self.pool_size)
    h = act(_conv(h.shape[-1], 1, 'logits_hidden', self.dtype)(h))
    return _conv(1, 5, 'to_logits', self.dtype, shard=False)(h).astype(jnp.float32)


def check_size(hidden_channels: int, num_stages: int, blur_taps: int, num_groups: int,
               prefix: str = 'discriminator.', pool_size: int = 16):
  """A one-line error naming the config field (`prefix` + name), or None when the
  discriminator builds."""
  if num_stages < 1:
    return f'{prefix}num_stages={num_stages}; expected >= 1'
  if pool_size < 1:
    return f'{prefix}pool_size={pool_size}; expected >= 1'
  if blur_taps not in BLUR_TAPS:
    return f'{prefix}blur_taps={blur_taps}; expected one of {sorted(BLUR_TAPS)}'
  if hidden_channels < 1 or hidden_channels % num_groups:
    return (f'{prefix}hidden_channels={hidden_channels} is not a positive multiple of '
            f'{prefix}num_groups={num_groups} (GroupNorm)')
  return None


def params_from_torch(state_dict: dict, num_stages: int) -> dict:
  """Flax params of NLayerDiscriminator from the reference's state dict (numpy arrays by
  torch name: block_in.0, blocks.<s>.{0 conv, 2 GroupNorm}, to_logits.{0, 2}); conv
  kernels OIHW -> HWIO. The blur buffers are fixed taps, not params. A missing or
  misshapen key is a ValueError naming it."""
  names = {'block_in': 'block_in.0', 'logits_hidden': 'to_logits.0', 'to_logits': 'to_logits.2'}
  names.update({f'stage{s}_conv': f'blocks.{s}.0' for s in range(num_stages)})
  params = {}
  for flax_name, torch_name in names.items():
    weight = _get(state_dict, f'{torch_name}.weight', ndim=4)
    params[flax_name] = {'kernel': np.transpose(weight, (2, 3, 1, 0)),
                         'bias': _get(state_dict, f'{torch_name}.bias', ndim=1)}
  for s in range(num_stages):
    params[f'stage{s}_norm'] = {'scale': _get(state_dict, f'blocks.{s}.2.weight', ndim=1),
                                'bias': _get(state_dict, f'blocks.{s}.2.bias', ndim=1)}
  return params


def _get(state_dict, key, ndim):
  if key not in state_dict:
    raise ValueError(f'discriminator weights: no {key!r} in the state dict (keys: '
                     f'{sorted(state_dict)[:8]}...)')
  value = np.asarray(state_dict[key], np.float32)
  if value.ndim != ndim:
    raise ValueError(f'discriminator weights: {key!r} has shape {value.shape}; expected '
                     f'{ndim} dimensions')
  return value

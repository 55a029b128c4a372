"""The MaskGIT-VQGAN pixel decoder (convolutional), as bytedance/1d-tokenizer's
modeling/modules/maskgit_vqgan.py `Decoder` with the configuration its TiTok hard-codes
(hidden 128 channels, channel_mult (1, 1, 2, 2, 4), 2 res blocks per level, no dropout).

The two-stage TiTok-L-32/B-64/S-128 decode through it: their ViT decoder predicts, per
16 x 16 patch, logits over the 1,024 codes of the MaskGIT-VQGAN; softmax(logits) times that
codebook (256-d) is this decoder's input, upsampled 16x to pixels in [0, 1]
(models/titok_reference.py, model.layout='reference_legacy').

Kept as the reference computes it, including one quirk: a res block that changes the
channel count adds `nin_shortcut` of its *output*, not of its input.
Shapes: B batch, h x w token grid, Z = 256 code channels, NHWC throughout.
"""
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

GROUPS = 32
EPS = 1e-6


def _norm(name):
  return nn.GroupNorm(GROUPS, epsilon=EPS, use_fast_variance=False, name=name)


def _conv(features, kernel, name, bias=True):
  return nn.Conv(features, (kernel, kernel), padding='SAME', use_bias=bias, name=name)


class ResnetBlock(nn.Module):
  out_channels: int

  @nn.compact
  def __call__(self, x_BxHxWxC):
    h = _conv(self.out_channels, 3, 'conv1', bias=False)(nn.silu(_norm('norm1')(x_BxHxWxC)))
    h = _conv(self.out_channels, 3, 'conv2', bias=False)(nn.silu(_norm('norm2')(h)))
    if x_BxHxWxC.shape[-1] != self.out_channels:
      return h + _conv(self.out_channels, 1, 'nin_shortcut', bias=False)(h)  # sic: of h
    return h + x_BxHxWxC


def upsample_nearest(x_BxHxWxC, factor: int = 2):
  return jnp.repeat(jnp.repeat(x_BxHxWxC, factor, axis=1), factor, axis=2)


class PixelDecoder(nn.Module):
  """[B, h, w, Z] code vectors -> [B, 16h, 16w, channels] pixels (about [0, 1])."""
  channels: int = 3
  hidden: int = 128
  channel_mult: Sequence[int] = (1, 1, 2, 2, 4)
  num_res_blocks: int = 2

  @nn.compact
  def __call__(self, z_BxhxwxZ):
    mult = tuple(self.channel_mult)
    width = self.hidden * mult[-1]
    h = _conv(width, 3, 'conv_in')(z_BxhxwxZ.astype(jnp.float32))
    for j in range(self.num_res_blocks):
      h = ResnetBlock(width, name=f'mid_{j}')(h)
    for level in reversed(range(len(mult))):
      width = self.hidden * mult[level]
      for j in range(self.num_res_blocks):
        h = ResnetBlock(width, name=f'up_{level}_block_{j}')(h)
      if level:
        h = _conv(width, 3, f'up_{level}_upsample_conv')(upsample_nearest(h))
    return _conv(self.channels, 3, 'conv_out')(nn.silu(_norm('norm_out')(h)))

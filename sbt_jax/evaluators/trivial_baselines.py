"""Trivial reconstructions a tokenizer must beat: each image's mean colour, and bilinear
down/up sampling to the tokenizer's number of bits.

Images are [-1, 1] (model space), B x H x W x C. `down_up` keeps `size` x `size` x C values
of `bits_per_value` bits each (uniform quantization of [-1, 1]), so its code length is
size^2 * C * bits_per_value bits; `best_down_up` picks, among the sizes that fit a budget,
the one with the best PSNR (each with as many bits per value as fit, at most 8).
"""
import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

from sbt_jax.evaluators import reconstruction


def mean_colour(x_BxHxWxC):
  """Every pixel replaced by its image's mean colour (24 bits for RGB, 8 for gray)."""
  return jnp.broadcast_to(jnp.mean(x_BxHxWxC, axis=(1, 2), keepdims=True), x_BxHxWxC.shape)


def quantize(x, bits_per_value: int):
  """Uniform quantization of [-1, 1] to 2**bits_per_value levels (ends included)."""
  levels = 2 ** bits_per_value - 1
  return jnp.round((jnp.clip(x, -1.0, 1.0) + 1.0) / 2.0 * levels) / levels * 2.0 - 1.0


def down_up(x_BxHxWxC, size: int, bits_per_value: int = 8):
  """Bilinear (antialiased) resize to size x size, quantize, bilinear resize back."""
  b, h, w, c = x_BxHxWxC.shape
  small = jax.image.resize(x_BxHxWxC, (b, size, size, c), 'linear', antialias=True)
  return jax.image.resize(quantize(small, bits_per_value), (b, h, w, c), 'linear')


def down_up_options(bits: float, channels: int, image_size: int):
  """[(size, bits_per_value)] that fit in `bits` per image: each size >= 1 with >= 1 bit
  per value, at most 8 bits and at most image_size."""
  options = []
  for size in range(1, image_size + 1):
    per_value = min(8, int(bits // (size * size * channels)))
    if per_value < 1:
      break
    options.append((size, per_value))
  return options


def scores(x_BxHxWxC, recon_BxHxWxC) -> dict:
  """Per-image PSNR and SSIM ([B] each) in [0, 1] space, as the tokenizer eval computes them."""
  x01, r01 = reconstruction.to_unit(x_BxHxWxC), reconstruction.to_unit(recon_BxHxWxC)
  return {'psnr': np.asarray(dm_pix.psnr(x01, r01)), 'ssim': np.asarray(dm_pix.ssim(x01, r01))}


def evaluate(batches, bits_list, channels: int, image_size: int) -> dict:
  """{'mean_colour': {...}, 'down_up@<bits>': {..., 'size', 'bits_per_value'}} of mean
  PSNR / SSIM over the images of `batches` (iterable of {'image', optional 'mask'})."""
  candidates = {'mean_colour': mean_colour}
  for bits in bits_list:
    for size, per_value in down_up_options(bits, channels, image_size):
      candidates[(bits, size, per_value)] = (
          lambda x, s=size, v=per_value: down_up(x, s, v))
  fns = {name: jax.jit(fn) for name, fn in candidates.items()}
  sums, count = {}, 0.0
  for batch in batches:
    x = jnp.asarray(batch['image'])
    mask_B = np.asarray(batch.get('mask', np.ones(x.shape[0])), np.float64)
    count += mask_B.sum()
    for name, fn in fns.items():
      for metric, per_image in scores(x, fn(x)).items():
        # Padding rows (mask 0) may score inf (a flat image's mean colour is exact).
        value = float(np.where(mask_B > 0, per_image, 0.0) @ mask_B)
        sums[(name, metric)] = sums.get((name, metric), 0.0) + value
  out = {'mean_colour': {m: sums[('mean_colour', m)] / count for m in ('psnr', 'ssim')},
         'num_images': int(count)}
  for bits in bits_list:
    best = None
    for name in candidates:
      if isinstance(name, tuple) and name[0] == bits:
        row = {'size': name[1], 'bits_per_value': name[2],
               **{m: sums[(name, m)] / count for m in ('psnr', 'ssim')}}
        best = row if best is None or row['psnr'] > best['psnr'] else best
    if best is not None:
      out[f'down_up@{bits:g}'] = best
  return out

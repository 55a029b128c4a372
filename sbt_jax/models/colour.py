"""Each image's mean colour as exact side ids, beside the learned tokens (issue 21).

On natural photographs the mean colour is most of every patch and of every output pixel;
while it has to pass through the ViTs and the codebook, its error drives the shared
weights and no detail is learnt within a CPU budget, and a codebook returns only colours it
was trained on (docs/natural_rgb.md has the evidence). So, as JPEG codes its DC coefficient
apart, a tokenizer with model.colour_levels = V > 0 quantizes each channel's mean to one of V
evenly spaced values in [-1, 1] (C ids per image, log2(V) bits each), encodes the image
minus that colour and adds it back after the decoder. The C colour ids follow the G learned
global ids ([B, G + C], ids in [0, V) with V <= the global codebook size), so generators,
stored ids and SelfBootTok's / TaTok's formats carry them as global ids.
"""
import jax.numpy as jnp

# Below, `geometry` is an options.Geometry (image channels, G, colour_levels).


def split(x_BxHxWxC, levels: int):
  """(x minus its quantized mean colour, colour ids B x C int32)."""
  mean_BxC = jnp.mean(x_BxHxWxC.astype(jnp.float32), axis=(1, 2))
  ids_BxC = jnp.clip(jnp.round((mean_BxC + 1.0) / 2.0 * (levels - 1)), 0,
                     levels - 1).astype(jnp.int32)
  return x_BxHxWxC - value(ids_BxC, levels), ids_BxC


def value(ids_BxC, levels: int):
  """The colour the ids stand for, B x 1 x 1 x C (broadcasts over an image); ids past the
  levels (a generator's sample, when levels < its vocabulary) read as the nearest level."""
  ids_BxC = jnp.clip(ids_BxC, 0, levels - 1)
  colour_BxC = ids_BxC.astype(jnp.float32) / (levels - 1) * 2.0 - 1.0
  return colour_BxC[:, None, None, :]


def num_ids(levels: int, channels: int) -> int:
  """Colour ids per image: one per channel, none when off (levels 0)."""
  return channels if levels else 0


def split_image(x_BxHxWxC, geometry):
  """(x minus its quantized mean colour, colour ids B x C), or (x, None) when off."""
  if not geometry.colour_levels:
    return x_BxHxWxC, None
  return split(x_BxHxWxC, geometry.colour_levels)


def add_back(x_BxHxWxC, colour_ids_BxC, geometry):
  """The decoder's output plus the colour the ids stand for (unchanged when None)."""
  if colour_ids_BxC is None:
    return x_BxHxWxC
  return x_BxHxWxC + value(colour_ids_BxC, geometry.colour_levels)


def split_ids(global_ids_BxS, geometry):
  """Global ids [B, G + C] -> (learned ids B x G, colour ids B x C or None when off)."""
  g = geometry.num_global_tokens
  if not geometry.colour_levels:
    return global_ids_BxS[:, :g], None
  return global_ids_BxS[:, :g], global_ids_BxS[:, g:geometry.num_global_ids]


def join_ids(aux):
  """aux['ids'] followed by aux['colour_ids'] if present: the stored global ids."""
  if 'colour_ids' not in aux:
    return aux['ids']
  return jnp.concatenate([aux['ids'], aux['colour_ids'].astype(aux['ids'].dtype)], axis=1)

"""TiTok's encoder and decoder in the layout of bytedance/1d-tokenizer, so its released
weights load and give its numbers (docs/official_weights.md): model.layout='reference' (the
single-stage BL/SL tokenizers, its is_legacy=False) and 'reference_legacy' (the two-stage
L-32/B-64/S-128: is_legacy=True with finetune_decoder=True).

What differs from our layout (models/titok.py), all read from the reference's
modeling/modules/blocks.py (TiTokEncoder, TiTokDecoder) and modeling/titok.py:
- the networks see images in [0, 1] (ours: [-1, 1]; converted here at both ends);
- a class token ahead of the patches (and of the decoder's mask tokens), position
  embeddings over [class; patches], latent queries with their own position embeddings, and
  a LayerNorm ('ln_pre') on the whole sequence before the first block;
- LayerNorm epsilon 1e-5 and exact (erf) GELU in every block (options.ln_eps, exact_gelu);
- decoder: its own patch size; a 1x1 conv (a Dense per patch) to p*p*C pixels, pixel
  shuffle, and a 3x3 conv ('conv_out') over the image.
- legacy (two-stage) heads: the encoder's 1x1 conv reads the [B, G, D] latents reshaped raw
  to [B, D, G] (a reshape, not a transpose: it mixes features across tokens, and the
  weights were trained so); the decoder predicts per patch logits over the 1,024 codes of
  the MaskGIT-VQGAN (1x1 conv to 2D, tanh, 1x1 conv), whose softmax-weighted code vectors
  the convolutional MaskGIT-VQGAN decoder turns into pixels (models/vqgan_decoder.py).

Shapes: B batch, H x W x C image, p patch size, N = (H/p)^2 patches, G latent tokens,
D transformer width, T token_dim.
"""
import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sbt_jax.models import options as options_lib
from sbt_jax.models import vit
from sbt_jax.models import vqgan_decoder

# The two-stage decoder's proxy codes: the MaskGIT-VQGAN's codebook (1,024 x 256).
PROXY_CODES = 1024
PROXY_CODE_DIM = 256

LN_EPS = 1e-5  # torch.nn.LayerNorm's default


def reference_options(options: options_lib.TransformerOptions
                      ) -> options_lib.TransformerOptions:
  """The transformer options with the reference's LayerNorm epsilon and exact GELU."""
  return dataclasses.replace(options, ln_eps=LN_EPS, exact_gelu=True)


def _embedding(module, name, rows, width):
  return module.param(name, vit.posemb_init(None, 'embed'), (rows, width))


class Encoder(nn.Module):
  """ViT over [class; patches; G latent queries] -> G tokens (TiTokEncoder)."""
  geometry: options_lib.Geometry
  token_dim: int
  size: Any  # {'width', 'depth', 'num_heads', 'mlp_ratio'}
  options: options_lib.TransformerOptions = options_lib.TransformerOptions()
  legacy: bool = False  # the two-stage head (raw reshape before the 1x1 conv)

  @nn.compact
  def __call__(self, x_BxHxWxC):
    """(z_BxGxT, None, an empty B x 0 x D): titok.Encoder's outputs without patch states."""
    b = x_BxHxWxC.shape[0]
    width, dtype = self.size['width'], self.options.dtype
    g = self.geometry.num_global_tokens
    x01_BxHxWxC = (x_BxHxWxC.astype(jnp.float32) + 1.0) * 0.5
    patches_BxNxP = vit.patchify(x01_BxHxWxC, self.geometry.patch_size)
    n = patches_BxNxP.shape[1]
    x_BxNxD = vit.Dense(width, dtype, 'patch_embed', (None, 'embed'), ('embed',))(
        patches_BxNxP)
    cls_BxD = jnp.broadcast_to(_embedding(self, 'class_embedding', 1, width), (b, 1, width))
    x_BxMxD = (jnp.concatenate([cls_BxD, x_BxNxD], axis=1)
               + _embedding(self, 'positional_embedding', n + 1, width))
    latents_GxD = (_embedding(self, 'latent_tokens', g, width)
                   + _embedding(self, 'latent_token_positional_embedding', g, width))
    h_BxLxD = jnp.concatenate([x_BxMxD, jnp.broadcast_to(latents_GxD, (b, g, width))], 1)
    h_BxLxD = vit.layer_norm('ln_pre', LN_EPS)(h_BxLxD)
    # The transformer's final LayerNorm is the reference's ln_post (per row: same values).
    h_BxGxD = reference_options(self.options).transformer(self.size)(
        h_BxLxD, keep=(n + 1, n + 1 + g))
    head = vit.Dense(self.token_dim, dtype, 'conv_out', ('embed', 'token'), ('token',))
    if self.legacy:  # [B, G, D] read as [B, D, G] channels-first, then the 1x1 conv
      z_BxGxT = head(h_BxGxD.reshape(b, width, g).transpose(0, 2, 1))
    else:
      z_BxGxT = head(h_BxGxD)
    return z_BxGxT, None, h_BxGxD[:, :0]


class Decoder(nn.Module):
  """ViT over [class; N mask tokens; G tokens] -> image (TiTokDecoder; with `legacy`, its
  proxy-code head and the MaskGIT-VQGAN pixel decoder of TiTok.decode)."""
  geometry: options_lib.Geometry
  size: Any  # {'width', 'depth', 'num_heads', 'mlp_ratio'}
  options: options_lib.TransformerOptions = options_lib.TransformerOptions()
  patch_size: int = 0  # the decoder's patch size (0: geometry.patch_size)
  legacy: bool = False

  @nn.compact
  def __call__(self, q_BxGxT, proxy_logits: bool = False):
    """Image in [-1, 1]; legacy with `proxy_logits`: the [B, h, w, 1024] code logits."""
    b, g, _ = q_BxGxT.shape
    geo, width, dtype = self.geometry, self.size['width'], self.options.dtype
    p = self.patch_size or geo.patch_size
    n = (geo.image_size // p) ** 2
    z_BxGxD = (vit.Dense(width, dtype, 'decoder_embed', ('token', 'embed'), ('embed',))(
        q_BxGxT) + _embedding(self, 'latent_token_positional_embedding', g, width))
    mask_1xD = _embedding(self, 'mask_token', 1, width)
    cls_1xD = _embedding(self, 'class_embedding', 1, width)
    queries_MxD = (jnp.concatenate([cls_1xD, jnp.broadcast_to(mask_1xD, (n, width))], 0)
                   + _embedding(self, 'positional_embedding', n + 1, width))
    h_BxLxD = jnp.concatenate([jnp.broadcast_to(queries_MxD, (b, n + 1, width)), z_BxGxD], 1)
    h_BxLxD = vit.layer_norm('ln_pre', LN_EPS)(h_BxLxD)
    h_BxNxD = reference_options(self.options).transformer(self.size)(h_BxLxD, keep=(1, n + 1))
    if self.legacy:
      return self._proxy_code_head(h_BxNxD, proxy_logits)
    # 1x1 conv to (p1, p2, c) per patch, then pixel shuffle: patchify's order.
    pix_BxNxP = vit.Dense(p * p * geo.channels, dtype, 'ffn', ('embed', None), (None,))(
        h_BxNxD)
    x01_BxHxWxC = vit.unpatchify(pix_BxNxP, p, geo.image_size, geo.image_size, geo.channels)
    x01_BxHxWxC = nn.Conv(geo.channels, (3, 3), padding=1, name='conv_out')(x01_BxHxWxC)
    return x01_BxHxWxC * 2.0 - 1.0

  def _proxy_code_head(self, h_BxNxD, proxy_logits):
    b, _, width = h_BxNxD.shape
    grid = self.geometry.image_size // (self.patch_size or self.geometry.patch_size)
    dtype = self.options.dtype
    h_BxNx2D = jnp.tanh(vit.Dense(2 * width, dtype, 'ffn_0', ('embed', 'mlp'), ('mlp',))(
        h_BxNxD))
    logits_BxNxK = vit.Dense(PROXY_CODES, dtype, 'ffn_2', ('mlp', None), (None,))(h_BxNx2D)
    logits_BxhxwxK = logits_BxNxK.reshape(b, grid, grid, PROXY_CODES)
    if proxy_logits:
      return logits_BxhxwxK
    codes_KxZ = self.param('pixel_codebook', nn.with_logical_partitioning(
        nn.initializers.normal(1.0 / PROXY_CODES), (None, None)),
                           (PROXY_CODES, PROXY_CODE_DIM), jnp.float32)
    z_BxhxwxZ = jnp.einsum('bhwk,kz->bhwz', jax.nn.softmax(logits_BxhxwxK, -1), codes_KxZ)
    x01_BxHxWxC = vqgan_decoder.PixelDecoder(self.geometry.channels, name='pixel_decoder')(
        z_BxhxwxZ)
    return x01_BxHxWxC * 2.0 - 1.0

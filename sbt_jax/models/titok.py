"""TiTok: a ViT encoder compresses patches into G latent tokens, a VQ turns them into ids,
a ViT decoder rebuilds the patches from mask tokens plus the quantized latents.

Shapes: B batch, H x W x C image, p patch size, N = (H/p)(W/p) patches, G latent tokens,
D transformer width, T token_dim.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from sbt_jax.models import quantizer as quantizer_lib
from sbt_jax.models import vit

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


class Encoder(nn.Module):
  patch_size: int
  num_latent_tokens: int
  token_dim: int
  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32
  attention_impl: str = 'auto'
  remat_policy: str = 'none'
  scan_layers: bool = False
  # Extra latent queries whose hidden states are returned unprojected (SelfBootTok's
  # local_tokens='latent' control); 0 keeps TiTok's parameter tree.
  num_extra_latents: int = 0
  # False: the caller needs no patch states (TiTok), so the last block computes the latent
  # rows only (same z, about a third of that block's work); the second output is then None.
  patch_states: bool = True

  @nn.compact
  def __call__(self, x_BxHxWxC):
    """(z_BxGxT projected latent tokens, patch states B x N x D, extra latents B x E x D)."""
    b = x_BxHxWxC.shape[0]
    patches_BxNxP = vit.patchify(x_BxHxWxC.astype(jnp.float32), self.patch_size)
    n = patches_BxNxP.shape[1]
    x_BxNxD = vit.Dense(self.width, self.dtype, 'patch_embed', (None, 'embed'),
                        ('embed',))(patches_BxNxP)
    x_BxNxD = x_BxNxD + self.param('pos_embed', vit.posemb_init(None, 'embed'),
                                   (n, self.width))
    latents_GxD = self.param('latent_tokens', vit.posemb_init(None, 'embed'),
                             (self.num_latent_tokens, self.width))
    latents_BxGxD = jnp.broadcast_to(latents_GxD,
                                     (b, self.num_latent_tokens, self.width))
    parts = [x_BxNxD, latents_BxGxD]
    if self.num_extra_latents:
      extra_ExD = self.param('extra_latent_tokens', vit.posemb_init(None, 'embed'),
                             (self.num_extra_latents, self.width))
      parts.append(jnp.broadcast_to(extra_ExD, (b, self.num_extra_latents, self.width)))
    h_BxLxD = jnp.concatenate(parts, axis=1)
    start = 0 if self.patch_states else n
    h_BxLxD = vit.Transformer(self.depth, self.num_heads, self.mlp_dim, self.dtype,
                              self.attention_impl, self.remat_policy, self.scan_layers,
                              name='transformer')(h_BxLxD, keep=(start, h_BxLxD.shape[1]))
    g = self.num_latent_tokens
    z_BxGxT = vit.Dense(self.token_dim, self.dtype, 'to_token', ('embed', 'token'),
                        ('token',))(h_BxLxD[:, n - start:n - start + g])
    patches_BxNxD = h_BxLxD[:, :n] if self.patch_states else None
    return z_BxGxT, patches_BxNxD, h_BxLxD[:, n - start + g:]


class Decoder(nn.Module):
  image_size: int
  channels: int
  patch_size: int
  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32
  attention_impl: str = 'auto'
  remat_policy: str = 'none'
  scan_layers: bool = False

  @nn.compact
  def __call__(self, q_BxGxT, slot_plan_BxNxL=None, patch_q_BxNxT=None, keep_BxN=None):
    """Image from G quantized tokens. With `slot_plan_BxNxL`, the last L tokens also get the
    plan-weighted mean of the patch position embeddings (where each slot sits). With
    `patch_q_BxNxT` and `keep_BxN` (TaTok), patch i's input is its embedded quantized token
    where kept and the mask token where dropped (plus its position embedding either way)."""
    b, g, _ = q_BxGxT.shape
    side = self.image_size // self.patch_size
    n = side * side
    z_BxGxD = vit.Dense(self.width, self.dtype, 'token_embed', ('token', 'embed'),
                        ('embed',))(q_BxGxT)
    z_BxGxD = z_BxGxD + self.param('latent_pos_embed', vit.posemb_init(None, 'embed'),
                                   (g, self.width))
    mask_1xD = self.param('mask_token', vit.posemb_init(None, 'embed'), (1, self.width))
    pos_NxD = self.param('pos_embed', vit.posemb_init(None, 'embed'), (n, self.width))
    if slot_plan_BxNxL is not None:
      plan = slot_plan_BxNxL / jnp.maximum(jnp.sum(slot_plan_BxNxL, 1, keepdims=True), 1e-12)
      slot_pos_BxLxD = jnp.einsum('bnl,nd->bld', plan, pos_NxD)
      l = slot_pos_BxLxD.shape[1]
      z_BxGxD = z_BxGxD.at[:, g - l:].add(slot_pos_BxLxD)
    mask_BxNxD = jnp.broadcast_to(mask_1xD, (b, n, self.width))
    if patch_q_BxNxT is not None:
      patch_BxNxD = vit.Dense(self.width, self.dtype, 'patch_token_embed', ('token', 'embed'),
                              ('embed',))(patch_q_BxNxT)
      mask_BxNxD = jnp.where(keep_BxN[..., None], patch_BxNxD, mask_BxNxD)
    mask_BxNxD = mask_BxNxD + pos_NxD
    h_BxLxD = jnp.concatenate([mask_BxNxD, z_BxGxD], axis=1)
    h_BxNxD = vit.Transformer(self.depth, self.num_heads, self.mlp_dim, self.dtype,
                              self.attention_impl, self.remat_policy, self.scan_layers,
                              name='transformer')(h_BxLxD, keep=(0, n))
    pix_BxNxP = vit.Dense(self.patch_size * self.patch_size * self.channels, self.dtype,
                          'to_pixels', ('embed', None), (None,))(h_BxNxD)
    return vit.unpatchify(pix_BxNxP, self.patch_size,
                          self.image_size, self.image_size, self.channels)


class TiTok(nn.Module):
  """encode(x) -> (q, aux with ids); decode(q) -> x; decode_ids(ids) -> x; __call__ both."""
  image_size: int
  channels: int
  patch_size: int
  num_latent_tokens: int
  codebook_size: int
  token_dim: int
  commitment_cost: float
  encoder_cfg: Any
  decoder_cfg: Any
  dtype: Any = jnp.float32
  attention_impl: str = 'auto'
  remat_policy: str = 'none'
  scan_layers: bool = False

  def setup(self):
    enc, dec = self.encoder_cfg, self.decoder_cfg
    common = (self.dtype, self.attention_impl, self.remat_policy, self.scan_layers)
    self.encoder = Encoder(self.patch_size, self.num_latent_tokens, self.token_dim,
                           *vit.sizes(enc), *common, patch_states=False)
    self.quantizer = quantizer_lib.VectorQuantizer(
        self.codebook_size, self.token_dim, self.commitment_cost)
    self.decoder = Decoder(self.image_size, self.channels, self.patch_size, *vit.sizes(dec),
                           *common)

  def encode(self, x_BxHxWxC):
    return self.quantizer(self.encoder(x_BxHxWxC)[0])

  def decode(self, q_BxGxT):
    return self.decoder(q_BxGxT)

  def decode_ids(self, ids_BxG):
    return self.decoder(self.quantizer.lookup(ids_BxG))

  def __call__(self, x_BxHxWxC):
    q_BxGxT, aux = self.encode(x_BxHxWxC)
    return self.decode(q_BxGxT), aux


def build_tokenizer(config: ml_collections.ConfigDict) -> TiTok:
  """The tokenizer a config describes (data.* fixes the image geometry)."""
  m = config.model
  return TiTok(
      image_size=config.data.image_size, channels=config.data.channels,
      patch_size=m.patch_size, num_latent_tokens=m.num_latent_tokens,
      codebook_size=m.codebook_size, token_dim=m.token_dim,
      commitment_cost=m.commitment_cost,
      encoder_cfg=dict(m.encoder), decoder_cfg=dict(m.decoder),
      dtype=DTYPES[m.compute_dtype], attention_impl=m.attention_impl,
      remat_policy=m.remat_policy, scan_layers=m.scan_layers)

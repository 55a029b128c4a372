"""TiTok: a ViT encoder compresses patches into G latent tokens, a VQ turns them into ids,
a ViT decoder rebuilds the patches from mask tokens plus the quantized latents.

Shapes: B batch, H x W x C image, p patch size, N = (H/p)(W/p) patches, G latent tokens,
D transformer width, T token_dim.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from sbt_jax.models import colour
from sbt_jax.models import options as options_lib
from sbt_jax.models import quantizer as quantizer_lib
from sbt_jax.models import titok_reference
from sbt_jax.models import vae
from sbt_jax.models import vit

# model.layout: 'sbt' (this file's encoder and decoder), or bytedance/1d-tokenizer's
# layouts (models/titok_reference.py: its weights load): 'reference' (single-stage) and
# 'reference_legacy' (two-stage: legacy heads, proxy codes, MaskGIT-VQGAN pixel decoder).
LAYOUTS = ('sbt', 'reference', 'reference_legacy')


def spatial_mix(module, name, x_BxSxD, rows: int):
  """R rows, each a learned linear mix of the S rows of x (weights R x S, init N(0, 1/S)).

  model.spatial_mix: with learned queries alone, a ViT tokenizer's latents (and the
  decoder's mask rows) start as near-uniform attention averages, which carry no content
  once the image's mean colour is taken out (models/colour.py), and detail is learnt only
  after a long plateau; this gives every latent (patch) a different view from step 0
  (docs/natural_rgb.md has the evidence)."""
  mix_RxS = module.param(name, nn.with_logical_partitioning(
      nn.initializers.normal(x_BxSxD.shape[1] ** -0.5), (None, None)),
      (rows, x_BxSxD.shape[1]), jnp.float32)
  return jnp.einsum('rs,bsd->brd', mix_RxS.astype(x_BxSxD.dtype), x_BxSxD)


class Encoder(nn.Module):
  """ViT over [patches ; G latent queries]; the latent rows become the 1D tokens."""
  geometry: options_lib.Geometry
  token_dim: int
  size: Any  # the transformer's size: {'width', 'depth', 'num_heads', 'mlp_ratio'}
  options: options_lib.TransformerOptions = options_lib.TransformerOptions()
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
    width, dtype = self.size['width'], self.options.dtype
    g = self.geometry.num_global_tokens
    patches_BxNxP = vit.patchify(x_BxHxWxC.astype(jnp.float32), self.geometry.patch_size)
    n = patches_BxNxP.shape[1]
    x_BxNxD = vit.Dense(width, dtype, 'patch_embed', (None, 'embed'),
                        ('embed',))(patches_BxNxP)
    content_BxNxD = x_BxNxD  # the patches before their position embeddings
    x_BxNxD = x_BxNxD + self.param('pos_embed', vit.posemb_init(None, 'embed'), (n, width))
    latents_GxD = self.param('latent_tokens', vit.posemb_init(None, 'embed'), (g, width))
    latents_BxGxD = jnp.broadcast_to(latents_GxD, (b, g, width))
    if self.options.spatial_mix:  # latent g starts as its own mix of the patches' content
      latents_BxGxD = latents_BxGxD + spatial_mix(self, 'latent_mix', content_BxNxD, g)
    parts = [x_BxNxD, latents_BxGxD]
    if self.num_extra_latents:
      extra_ExD = self.param('extra_latent_tokens', vit.posemb_init(None, 'embed'),
                             (self.num_extra_latents, width))
      parts.append(jnp.broadcast_to(extra_ExD, (b, self.num_extra_latents, width)))
    h_BxLxD = jnp.concatenate(parts, axis=1)
    start = 0 if self.patch_states else n
    h_BxLxD = self.options.transformer(self.size)(h_BxLxD, keep=(start, h_BxLxD.shape[1]))
    z_BxGxT = vit.Dense(self.token_dim, dtype, 'to_token', ('embed', 'token'),
                        ('token',))(h_BxLxD[:, n - start:n - start + g])
    patches_BxNxD = h_BxLxD[:, :n] if self.patch_states else None
    return z_BxGxT, patches_BxNxD, h_BxLxD[:, n - start + g:]


class Decoder(nn.Module):
  """ViT over [N mask tokens ; 1D tokens]; the mask rows become pixel patches."""
  geometry: options_lib.Geometry
  size: Any  # the transformer's size: {'width', 'depth', 'num_heads', 'mlp_ratio'}
  options: options_lib.TransformerOptions = options_lib.TransformerOptions()

  @nn.compact
  def __call__(self, q_BxGxT, slot_plan_BxNxL=None, patch_q_BxNxT=None, keep_BxN=None):
    """Image from G quantized tokens. With `slot_plan_BxNxL`, the last L tokens also get the
    plan-weighted mean of the patch position embeddings (where each slot sits). With
    `patch_q_BxNxT` and `keep_BxN` (TaTok), patch i's input is its embedded quantized token
    where kept and the mask token where dropped (plus its position embedding either way)."""
    b, g, _ = q_BxGxT.shape
    geo, width, dtype = self.geometry, self.size['width'], self.options.dtype
    n = geo.num_patches
    z_BxGxD = vit.Dense(width, dtype, 'token_embed', ('token', 'embed'),
                        ('embed',))(q_BxGxT)
    tokens_BxGxD = z_BxGxD  # before the latent position embeddings
    z_BxGxD = z_BxGxD + self.param('latent_pos_embed', vit.posemb_init(None, 'embed'),
                                   (g, width))
    mask_1xD = self.param('mask_token', vit.posemb_init(None, 'embed'), (1, width))
    pos_NxD = self.param('pos_embed', vit.posemb_init(None, 'embed'), (n, width))
    if slot_plan_BxNxL is not None:
      plan = slot_plan_BxNxL / jnp.maximum(jnp.sum(slot_plan_BxNxL, 1, keepdims=True), 1e-12)
      slot_pos_BxLxD = jnp.einsum('bnl,nd->bld', plan, pos_NxD)
      l = slot_pos_BxLxD.shape[1]
      z_BxGxD = z_BxGxD.at[:, g - l:].add(slot_pos_BxLxD)
    mask_BxNxD = jnp.broadcast_to(mask_1xD, (b, n, width))
    if patch_q_BxNxT is not None:
      patch_BxNxD = vit.Dense(width, dtype, 'patch_token_embed', ('token', 'embed'),
                              ('embed',))(patch_q_BxNxT)
      mask_BxNxD = jnp.where(keep_BxN[..., None], patch_BxNxD, mask_BxNxD)
    mask_BxNxD = mask_BxNxD + pos_NxD
    if self.options.spatial_mix:  # patch i starts from its own mix of the tokens
      mask_BxNxD = mask_BxNxD + spatial_mix(self, 'token_mix', tokens_BxGxD, n)
    h_BxLxD = jnp.concatenate([mask_BxNxD, z_BxGxD], axis=1)
    h_BxNxD = self.options.transformer(self.size)(h_BxLxD, keep=(0, n))
    pix_BxNxP = vit.Dense(geo.patch_size * geo.patch_size * geo.channels, dtype,
                          'to_pixels', ('embed', None), (None,),
                          zero_kernel=self.options.zero_pixel_head)(h_BxNxD)
    return vit.unpatchify(pix_BxNxP, geo.patch_size, geo.image_size, geo.image_size,
                          geo.channels)


class TiTok(nn.Module):
  """encode(x) -> (q, aux with ids); decode(q) -> x; encode_ids / decode_ids: the stored
  ids [B, G (+ C colour ids)]; __call__ both.

  With geometry.colour_levels > 0 the encoder sees x minus its quantized mean colour and
  the decoder's output gets it back (models/colour.py); aux['colour_ids'] holds the ids."""
  geometry: options_lib.Geometry
  codebook_size: int
  token_dim: int
  encoder_cfg: Any
  decoder_cfg: Any
  quantizer_kind: str = 'vq'
  options: options_lib.TransformerOptions = options_lib.TransformerOptions()
  layout: str = 'sbt'  # LAYOUTS
  decoder_patch_size: int = 0  # layout='reference': the decoder's (0: geometry.patch_size)
  vq_l2_norm: bool = True  # quantizer.VectorQuantizer.l2_norm

  @property
  def is_vae(self) -> bool:
    return self.quantizer_kind == 'vae'

  def setup(self):
    # A VAE's encoder emits a mean and a log-variance per channel (models/vae.py).
    enc_dim = 2 * self.token_dim if self.is_vae else self.token_dim
    if self.layout != 'sbt':
      legacy = self.layout == 'reference_legacy'
      self.encoder = titok_reference.Encoder(self.geometry, enc_dim, self.encoder_cfg,
                                             self.options, legacy)
      self.decoder = titok_reference.Decoder(self.geometry, self.decoder_cfg, self.options,
                                             self.decoder_patch_size, legacy)
    else:
      self.encoder = Encoder(self.geometry, enc_dim, self.encoder_cfg, self.options,
                             patch_states=False)
      self.decoder = Decoder(self.geometry, self.decoder_cfg, self.options)
    if self.is_vae:
      self.quantizer = vae.DiagonalGaussian(self.token_dim)
    else:
      self.quantizer = quantizer_lib.build(self.quantizer_kind, self.codebook_size,
                                           self.token_dim, self.vq_l2_norm)

  def encode(self, x_BxHxWxC, noise_BxGxT=None):
    """(q, aux): q the quantized tokens (VAE: the latents: mean, or mean + std * noise)."""
    x_BxHxWxC, colour_ids = colour.split_image(x_BxHxWxC, self.geometry)
    z = self.encoder(x_BxHxWxC)[0]
    if self.is_vae:
      return self.quantizer(z, noise_BxGxT)
    q_BxGxT, aux = self.quantizer(z)
    if colour_ids is not None:
      aux['colour_ids'] = colour_ids
    return q_BxGxT, aux

  def encode_ids(self, x_BxHxWxC):
    """The stored ids: [B, G] learned ids, then the C colour ids if on."""
    if self.is_vae:
      raise ValueError(VAE_NO_IDS)
    return colour.join_ids(self.encode(x_BxHxWxC)[1])

  def decode(self, q_BxGxT, colour_ids_BxC=None):
    return colour.add_back(self.decoder(q_BxGxT), colour_ids_BxC, self.geometry)

  def decode_ids(self, ids_BxS):
    if self.is_vae:
      raise ValueError(VAE_NO_IDS)
    ids_BxG, colour_ids = colour.split_ids(ids_BxS, self.geometry)
    return self.decode(self.quantizer.lookup(ids_BxG), colour_ids)

  def __call__(self, x_BxHxWxC, noise_BxGxT=None):
    """(reconstruction, aux); `noise_BxGxT` (VAE training: spec.train_args) samples the
    posterior instead of taking its mean."""
    q_BxGxT, aux = self.encode(x_BxHxWxC, noise_BxGxT)
    return self.decode(q_BxGxT, aux.get('colour_ids')), aux


VAE_NO_IDS = ("model.quantizer='vae' has continuous latents, not ids: use "
              'inference.Tokenizer.encode_latents / decode_latents')


def build_tokenizer(config: ml_collections.ConfigDict) -> TiTok:
  """The tokenizer a config describes (data.* fixes the image geometry)."""
  m = config.model
  return TiTok(
      geometry=options_lib.Geometry.from_config(config), codebook_size=m.codebook_size,
      token_dim=m.token_dim,
      encoder_cfg=dict(m.encoder), decoder_cfg=dict(m.decoder), quantizer_kind=m.quantizer,
      options=options_lib.TransformerOptions.from_config(m), layout=m.layout,
      decoder_patch_size=m.decoder_patch_size, vq_l2_norm=m.vq_l2_norm)

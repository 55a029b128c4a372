"""TaTok: G global tokens plus the N patch tokens that Dynamic Token Filtering keeps.

  encoder(x)            -> z (B x G x T), patch states (B x N x D)
  quantizer(z)          -> g_q, global ids (B x G)
  patch_quantizer(to_patch(patch states)) -> patch ids (B x N), patch codes (B x N x T_p)
  aligner(codebook[global ids]) -> logits over patch codes (B x N x K_p): p(code | global
                           ids); its cross-entropy trains the aligner and the global codebook
                           vectors it reads (not the encoder)
  DTF(entropy, r)       -> keep (B x N): the highest-entropy patches up to 1 - r of the total
  decoder([mask or patch token per position ; g_q]) -> image

The ranking is a function of the global ids only, so stored ids are the G global ids plus
the kept patch ids in rank order (variable length; see models/dtf.py). Training samples r
per image so that one model serves every rate; eval uses a given r.
With model.colour_levels > 0 (models/colour.py) the encoder sees x minus its mean colour,
the colour's C ids follow the G global ids and the decoder's output gets it back; the
aligner (the ranking) reads only the G learned global ids.
Shapes: B batch, N patches, G global tokens, M packed length, K_p patch codebook size.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sbt_jax.models import colour
from sbt_jax.models import dtf
from sbt_jax.models import options as options_lib
from sbt_jax.models import quantizer as quantizer_lib
from sbt_jax.models import titok
from sbt_jax.models import vit


class PatchAligner(nn.Module):
  """The 2D aligner of TaTok: N positional queries read the global tokens and give logits
  over the patch codebook at each position (B x N x K_p, float32)."""
  num_patches: int
  codebook_size: int
  size: Any  # the transformer's size: {'width', 'depth', 'num_heads', 'mlp_ratio'}
  options: options_lib.TransformerOptions = options_lib.TransformerOptions()

  @nn.compact
  def __call__(self, g_q_BxGxT):
    b = g_q_BxGxT.shape[0]
    n, width, dtype = self.num_patches, self.size['width'], self.options.dtype
    pos_NxD = self.param('pos_queries', vit.posemb_init(None, 'embed'), (n, width))
    glob_BxGxD = vit.Dense(width, dtype, 'global_embed', ('token', 'embed'),
                           ('embed',))(g_q_BxGxT)
    h_BxSxD = jnp.concatenate([jnp.broadcast_to(pos_NxD, (b, n, width)), glob_BxGxD], 1)
    h_BxSxD = self.options.transformer(self.size)(h_BxSxD, keep=(0, n))
    return vit.Dense(self.codebook_size, dtype, 'head', ('embed', 'vocab'),
                     ('vocab',))(h_BxSxD).astype(jnp.float32)


class TaTok(nn.Module):
  """encode(x, rate) -> ids and kept set; encode_ids / decode_ids: the stored format;
  decode / decode_packed -> images; __call__ trains (rate per image) and evaluates."""
  geometry: options_lib.Geometry
  codebook_size: int
  token_dim: int
  patch_codebook_size: int
  patch_token_dim: int
  encoder_cfg: Any
  decoder_cfg: Any
  aligner_cfg: Any
  # The rate of __call__ when it is given none (model.tatok.eval_rate: eval during training).
  eval_rate: float = 0.0
  quantizer_kind: str = 'vq'  # every codebook's quantizer: 'vq' or 'fsq'
  options: options_lib.TransformerOptions = options_lib.TransformerOptions()

  @property
  def num_patches(self):
    return self.geometry.num_patches

  @property
  def num_global_tokens(self):
    return self.geometry.num_global_tokens

  def setup(self):
    self.encoder = titok.Encoder(self.geometry, self.token_dim, self.encoder_cfg,
                                 self.options)
    self.quantizer = quantizer_lib.build(self.quantizer_kind, self.codebook_size,
                                         self.token_dim)
    self.to_patch = vit.Dense(self.patch_token_dim, self.options.dtype, 'to_patch',
                              ('embed', 'token'), ('token',))
    self.patch_quantizer = quantizer_lib.build(self.quantizer_kind, self.patch_codebook_size,
                                               self.patch_token_dim)
    self.aligner = PatchAligner(self.num_patches, self.patch_codebook_size, self.aligner_cfg,
                                self.options)
    self.decoder = titok.Decoder(self.geometry, self.decoder_cfg, self.options)

  # --- pieces -------------------------------------------------------------------------

  def _tokens(self, x_BxHxWxC):
    """(g_q, global aux (+ colour_ids when on), patch codes B x N x T_p, patch aux), of x
    minus its mean colour when colour ids are on."""
    x_BxHxWxC, colour_ids = colour.split_image(x_BxHxWxC, self.geometry)
    z_BxGxT, patches_BxNxD, _ = self.encoder(x_BxHxWxC)
    g_q_BxGxT, aux = self.quantizer(z_BxGxT)
    if colour_ids is not None:
      aux['colour_ids'] = colour_ids
    p_q_BxNxT, paux = self.patch_quantizer(self.to_patch(patches_BxNxD))
    return g_q_BxGxT, aux, p_q_BxNxT, paux

  def patch_entropy(self, global_ids_BxG):
    """(aligner logits B x N x K_p, entropy B x N in nats) from the global ids alone (colour
    ids, if any, are not read): the same computation at encode and decode time, so both
    rank the patches identically."""
    global_ids_BxG = colour.split_ids(global_ids_BxG, self.geometry)[0]
    logits_BxNxK = self.aligner(self.quantizer.lookup(global_ids_BxG))
    return logits_BxNxK, dtf.entropy_from_logits(jax.lax.stop_gradient(logits_BxNxK))

  @staticmethod
  def _rates(rate, batch: int):
    return jnp.broadcast_to(jnp.asarray(rate, jnp.float32), (batch,))

  # --- public API -----------------------------------------------------------------------

  def encode(self, x_BxHxWxC, rate):
    """{'global_ids' B x G (+ C colour ids), 'patch_ids' B x N (patch order, all patches),
    'keep' B x N, 'order' B x N (rank -> patch), 'num_kept' B} at rate r (scalar or B)."""
    _, aux, _, paux = self._tokens(x_BxHxWxC)
    _, entropy_BxN = self.patch_entropy(aux['ids'])
    keep_BxN, order_BxN, k_B = dtf.keep_mask(entropy_BxN,
                                             self._rates(rate, entropy_BxN.shape[0]))
    return {'global_ids': colour.join_ids(aux), 'patch_ids': paux['ids'], 'keep': keep_BxN,
            'order': order_BxN, 'num_kept': k_B}

  def encode_packed(self, x_BxHxWxC, rate, length: int | None = None):
    """(global ids B x G (+ C), packed kept patch ids B x M in rank order, valid B x M)."""
    out = self.encode(x_BxHxWxC, rate)
    packed, valid = dtf.pack(out['patch_ids'], out['order'], out['num_kept'],
                             length or self.num_patches)
    return out['global_ids'], packed, valid

  def encode_ids(self, x_BxHxWxC, rate):
    """The stored format, B x (G (+ C) + N): global ids (then the colour ids when on), then
    the kept patch ids in rank order, then -1 (padding)."""
    global_ids, packed, valid = self.encode_packed(x_BxHxWxC, rate)
    return jnp.concatenate([global_ids, jnp.where(valid, packed, -1)], axis=1)

  def rank_order(self, global_ids_BxG):
    """Patch indices by decreasing estimated entropy, from the global ids alone (B x N)."""
    return dtf.rank_order(self.patch_entropy(global_ids_BxG)[1])

  def decode(self, global_ids_BxG, patch_ids_BxN, keep_BxN):
    """The unpadded path: global ids (+ colour ids), patch ids in patch order; dropped
    positions (keep False) are mask tokens whatever id they hold."""
    global_ids_BxG, colour_ids = colour.split_ids(global_ids_BxG, self.geometry)
    g_q = self.quantizer.lookup(global_ids_BxG)
    p_q = self.patch_quantizer.lookup(patch_ids_BxN)
    return colour.add_back(self.decoder(g_q, patch_q_BxNxT=p_q, keep_BxN=keep_BxN),
                           colour_ids, self.geometry)

  def decode_packed(self, global_ids_BxG, packed_BxM, valid_BxM, rate=None):
    """The padded path: kept ids in rank order, padded, with a validity mask. With `rate`,
    only the first k(g, r) of them are used, k the count DTF keeps for these global ids
    (a sampled sequence may fill every position)."""
    entropy_BxN = self.patch_entropy(global_ids_BxG)[1]
    if rate is not None:
      k_B = dtf.num_kept(entropy_BxN, self._rates(rate, entropy_BxN.shape[0]))
      valid_BxM = valid_BxM & (jnp.arange(valid_BxM.shape[1])[None] < k_B[:, None])
    ids_BxN, keep_BxN = dtf.unpack(packed_BxM, valid_BxM, dtf.rank_order(entropy_BxN))
    return self.decode(global_ids_BxG, ids_BxN, keep_BxN)

  def decode_ids(self, ids_BxS, rate=None):
    """Images from the stored format (encode_ids; any G (+ C) + M columns, -1 padding)."""
    g = self.geometry.num_global_ids
    patch_BxM = ids_BxS[:, g:]
    return self.decode_packed(ids_BxS[:, :g], jnp.maximum(patch_BxM, 0), patch_BxM >= 0,
                              rate)

  def __call__(self, x_BxHxWxC, rate=None):
    """Reconstruction at rate r (scalar or per image; None: eval_rate) and every training
    signal."""
    rate = self.eval_rate if rate is None else rate
    g_q, aux, p_q, paux = self._tokens(x_BxHxWxC)
    logits_BxNxK, entropy_BxN = self.patch_entropy(aux['ids'])
    keep_BxN, _, k_B = dtf.keep_mask(entropy_BxN, self._rates(rate, g_q.shape[0]))
    recon = colour.add_back(self.decoder(g_q, patch_q_BxNxT=p_q, keep_BxN=keep_BxN),
                            aux.get('colour_ids'), self.geometry)
    out = {
        'ids': aux['ids'], 'z': aux['z'], 'codebook_loss': aux['codebook_loss'],
        'commit_loss': aux['commit_loss'], 'patch_ids': paux['ids'], 'patch_z': paux['z'],
        'patch_codebook_loss': paux['codebook_loss'], 'patch_commit_loss': paux['commit_loss'],
        'patch_logits': logits_BxNxK,
        'patch_entropy': jnp.mean(entropy_BxN),
        'kept_fraction': jnp.mean(keep_BxN.astype(jnp.float32)),
        # Stored tokens per image (B,): the G global ids (+ C colour ids) plus the kept
        # patch ids.
        'tokens_per_image': (self.geometry.num_global_ids + k_B).astype(jnp.float32),
    }
    if 'colour_ids' in aux:
      out['colour_ids'] = aux['colour_ids']
    return recon, out


def build(config: ml_collections.ConfigDict) -> TaTok:
  m = config.model
  return TaTok(
      geometry=options_lib.Geometry.from_config(config), codebook_size=m.codebook_size,
      token_dim=m.token_dim,
      patch_codebook_size=m.tatok.patch_codebook_size,
      patch_token_dim=m.tatok.patch_token_dim,
      encoder_cfg=dict(m.encoder), decoder_cfg=dict(m.decoder),
      aligner_cfg=dict(m.tatok.aligner), eval_rate=m.tatok.eval_rate,
      quantizer_kind=m.quantizer,
      options=options_lib.TransformerOptions.from_config(m))


def sample_rates(rng, batch: int, t: ml_collections.ConfigDict):
  """Training rates r ~ U(train_rate_min, train_rate_max), one per image (B,)."""
  return jax.random.uniform(rng, (batch,), jnp.float32, t.train_rate_min, t.train_rate_max)

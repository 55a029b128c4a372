"""SelfBootTok: G global tokens plus L local tokens that the global tokens can predict.

One tokenizer, two modes (see docs/design.md, "SelfBootTok, as this project defines it"):
  compress: the image gives G global ids and L local ids; decode from both.
  generate: only the G global ids are stored or sampled; the 2D aligner predicts the local
            ids from them (argmax or sampled with a temperature); decode.

Shapes: B batch, N patches, G global tokens (dim T), L local slots (dim F), D widths,
K / K_local codebook sizes.

compress path:
  encoder(x)        -> z (B x G x T), patch states (B x N x D) [+ L extra latents]
  quantizer(z)      -> g_q, global ids                    ('vq' or 'soft')
  prototypes(g_q)   -> P (B x L x F)                      (low-rank MLP, slot j = P_j)
  'ot':     f = to_local(patch states); T = Sinkhorn(f, P); slot_j = pooled content of f
  'latent': slot_j = to_local(extra latent j)             (the control: no OT)
  local_quantizer(slot) -> l_q, local ids
  decoder([g_q ; local_embed(l_q)]) -> image
generate path (everything from g_q):
  aligner(g_q, P)   -> f_hat (B x N x F), slot states;  'ot': T_gen = Sinkhorn(f_hat, P)
  logits            -> local ids -> l_q -> decoder
Slot positions (`slot_positions`) come only from T_gen, a function of the global ids.
With model.colour_levels > 0 (models/colour.py) the encoder sees x minus its mean colour,
the colour's C ids follow the G global ids in both modes and the decoder's output gets the
colour back; prototypes and the aligner read only the G learned global ids.
"""
import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sbt_jax.models import aligner as aligner_lib
from sbt_jax.models import colour
from sbt_jax.models import options as options_lib
from sbt_jax.models import ot_pool
from sbt_jax.models import quantizer as quantizer_lib
from sbt_jax.models import soft_quantizer
from sbt_jax.models import titok
from sbt_jax.models import vit

LOCAL_TOKENS = ('ot', 'latent')
ALIGN_TARGETS = ('self', 'ema')
GENERATE_LOCAL = ('ids', 'soft')
GLOBAL_QUANTIZERS = ('vq', 'soft')


class Prototypes(nn.Module):
  """P = MLP(flattened g_q): L slot prototypes per image through a `hidden`-dim bottleneck."""
  num_slots: int
  feature_dim: int
  hidden: int

  @nn.compact
  def __call__(self, g_q_BxGxT):
    b = g_q_BxGxT.shape[0]
    h = vit.Dense(self.hidden, jnp.float32, 'fc1', (None, 'mlp'), ('mlp',))(
        g_q_BxGxT.reshape(b, -1))
    h = vit.Dense(self.num_slots * self.feature_dim, jnp.float32, 'fc2', ('mlp', None),
                  (None,))(nn.gelu(h))
    return h.reshape(b, self.num_slots, self.feature_dim)


class SelfBootTok(nn.Module):
  """encode(x, mode) -> ids; decode_compress / decode_generate -> images; __call__ trains."""
  geometry: options_lib.Geometry
  codebook_size: int
  token_dim: int
  global_quantizer: str
  soft_temperature: float
  soft_straight_through: bool
  num_local_tokens: int
  local_codebook_size: int
  local_token_dim: int
  local_tokens: str
  prototype_hidden: int
  slot_positions: bool
  ot: ot_pool.OTConfig
  encoder_cfg: Any
  decoder_cfg: Any
  aligner_cfg: Any
  # Generate-mode reconstruction in __call__ (loss.w_generate > 0); also lets the aligner's
  # gradient reach the global tokens (otherwise its inputs are stop-gradient).
  generate_recon: bool = False
  # Every codebook's quantizer ('vq' or 'fsq'); global_quantizer='soft' overrides the global.
  quantizer_kind: str = 'vq'
  # Generate mode's local tokens: 'ids' or 'soft' (config.model.generate_local).
  generate_local: str = 'ids'
  options: options_lib.TransformerOptions = options_lib.TransformerOptions()

  @property
  def num_patches(self):
    return self.geometry.num_patches

  @property
  def num_global_tokens(self):
    return self.geometry.num_global_tokens

  def setup(self):
    self.encoder = titok.Encoder(
        self.geometry, self.token_dim, self.encoder_cfg, self.options,
        num_extra_latents=self.num_local_tokens if self.local_tokens == 'latent' else 0)
    if self.global_quantizer == 'soft':
      self.quantizer = soft_quantizer.SoftQuantizer(
          self.codebook_size, self.token_dim, self.soft_temperature,
          self.soft_straight_through)
    else:
      self.quantizer = quantizer_lib.build(self.quantizer_kind, self.codebook_size,
                                           self.token_dim)
    self.to_local = vit.Dense(self.local_token_dim, self.options.dtype, 'to_local',
                              ('embed', 'token'), ('token',))
    self.prototypes = Prototypes(self.num_local_tokens, self.local_token_dim,
                                 self.prototype_hidden)
    self.local_quantizer = quantizer_lib.build(self.quantizer_kind, self.local_codebook_size,
                                               self.local_token_dim)
    self.local_embed = vit.Dense(self.token_dim, jnp.float32, 'local_embed',
                                 ('token', None), (None,))
    self.aligner = aligner_lib.Aligner2D(
        self.num_patches, self.local_token_dim, self.local_codebook_size, self.aligner_cfg,
        self.options)
    self.decoder = titok.Decoder(self.geometry, self.decoder_cfg, self.options)

  # --- pieces -------------------------------------------------------------------------

  def _encode_global(self, x_BxHxWxC):
    """(g_q, aux: ids, VQ terms and, with colour ids on, colour_ids; patch states, extra
    latents), all of x minus its mean colour when colour ids are on."""
    x_BxHxWxC, colour_ids = colour.split_image(x_BxHxWxC, self.geometry)
    z_BxGxT, patches_BxNxD, extra_BxLxD = self.encoder(x_BxHxWxC)
    g_q_BxGxT, aux = self.quantizer(z_BxGxT)
    if colour_ids is not None:
      aux['colour_ids'] = colour_ids
    return g_q_BxGxT, aux, patches_BxNxD, extra_BxLxD

  def target_features(self, x_BxHxWxC):
    """The 2D tokens f (B x N x F) that align_loss trains the aligner towards, from these
    params alone (applied with the EMA params: the teacher of model.align_targets='ema')."""
    x_BxHxWxC, _ = colour.split_image(x_BxHxWxC, self.geometry)
    _, patches_BxNxD, _ = self.encoder(x_BxHxWxC)
    return self.to_local(patches_BxNxD).astype(jnp.float32)

  def _local_slots(self, patches_BxNxD, extra_BxLxD, protos_BxLxF):
    """Pre-quantization local tokens (B x L x F), 2D targets f (B x N x F), OT outputs."""
    f_BxNxF = self.to_local(patches_BxNxD).astype(jnp.float32)
    if self.local_tokens == 'latent':
      return self.to_local(extra_BxLxD).astype(jnp.float32), f_BxNxF, {}
    pooled_BxLxF, _, cost_B, stats = ot_pool.ot_pool(f_BxNxF, protos_BxLxF, self.ot)
    return pooled_BxLxF, f_BxNxF, {'ot_cost': jnp.mean(cost_B), **stats}

  def _predict_local(self, g_q_BxGxT, protos_BxLxF):
    """Aligner: (logits B x L x K_local, f_hat B x N x F, generate-side plan or None)."""
    f_hat_BxNxF, s_BxLxD = self.aligner(g_q_BxGxT, protos_BxLxF)
    f_hat_BxNxF = f_hat_BxNxF.astype(jnp.float32)
    if self.local_tokens == 'latent':
      return self.aligner.logits(s_BxLxD), f_hat_BxNxF, None
    # The generate-side plan only places content; its gradient is never needed.
    cfg = dataclasses.replace(self.ot, plan_grad='none')
    pooled_BxLxF, plan_BxNxL, _, _ = ot_pool.ot_pool(f_hat_BxNxF, protos_BxLxF, cfg)
    return self.aligner.logits(s_BxLxD, pooled_BxLxF), f_hat_BxNxF, plan_BxNxL

  def _decode(self, g_q_BxGxT, l_q_BxLxF, plan_BxNxL, colour_ids_BxC=None):
    tokens = jnp.concatenate([g_q_BxGxT, self.local_embed(l_q_BxLxF)], axis=1)
    x_BxHxWxC = self.decoder(tokens, plan_BxNxL if self.slot_positions else None)
    return colour.add_back(x_BxHxWxC, colour_ids_BxC, self.geometry)

  def _generate_local(self, logits_BxLxK, rng=None, temperature: float = 1.0):
    """Generate mode's local tokens (B x L x F) and local ids: the chosen ids looked up
    ('ids'), or softmax(logits) @ the local codebook ('soft'; its ids are the argmax, for
    reporting only: the decoder never sees them)."""
    if self.generate_local == 'soft':
      probs_BxLxK = jax.nn.softmax(logits_BxLxK, axis=-1)
      return (probs_BxLxK @ self.local_quantizer.normalized_codebook(),
              jnp.argmax(logits_BxLxK, axis=-1))
    local_ids = self.choose_local_ids(logits_BxLxK, rng, temperature)
    return self.local_quantizer.lookup(local_ids), local_ids

  @staticmethod
  def choose_local_ids(logits_BxLxK, rng=None, temperature: float = 1.0):
    """argmax (rng None or temperature 0) or a sample from softmax(logits / temperature)."""
    if rng is None or temperature == 0:
      return jnp.argmax(logits_BxLxK, axis=-1)
    return jax.random.categorical(rng, logits_BxLxK / temperature, axis=-1)

  # --- public API -----------------------------------------------------------------------

  def encode(self, x_BxHxWxC):
    """Compress-mode ids: (global ids B x G (+ C colour ids), local ids B x L)."""
    g_q, aux, patches, extra = self._encode_global(x_BxHxWxC)
    slots, _, _ = self._local_slots(patches, extra, self.prototypes(g_q))
    _, laux = self.local_quantizer(slots)
    return colour.join_ids(aux), laux['ids']

  def encode_global(self, x_BxHxWxC):
    """Generate-mode ids: the G global ids (+ C colour ids) only."""
    return colour.join_ids(self._encode_global(x_BxHxWxC)[1])

  def local_logits(self, global_ids_BxG):
    """The aligner's logits over local ids given only global ids (B x L x K_local); colour
    ids, if any, are not read."""
    g_q = self.quantizer.lookup(colour.split_ids(global_ids_BxG, self.geometry)[0])
    return self._predict_local(g_q, self.prototypes(g_q))[0]

  def aligner_targets(self, x_BxHxWxC):
    """What the aligner stage trains against: its inputs (g_q, prototypes) and its targets
    (compress-mode local ids, 2D tokens f), all from the frozen tokenizer."""
    g_q, _, patches, extra = self._encode_global(x_BxHxWxC)
    protos = self.prototypes(g_q)
    slots, f_BxNxF, _ = self._local_slots(patches, extra, protos)
    _, laux = self.local_quantizer(slots)
    return {'g_q': g_q, 'protos': protos, 'local_ids': laux['ids'], 'f': f_BxNxF}

  def aligner_predict(self, g_q_BxGxT, protos_BxLxF):
    """(local-id logits, predicted 2D tokens f_hat)."""
    logits, f_hat, _ = self._predict_local(g_q_BxGxT, protos_BxLxF)
    return logits, f_hat

  def decode_compress(self, global_ids_BxG, local_ids_BxL):
    """Image from global ids (+ colour ids) and local ids."""
    global_ids_BxG, colour_ids = colour.split_ids(global_ids_BxG, self.geometry)
    g_q = self.quantizer.lookup(global_ids_BxG)
    plan = None
    if self.slot_positions and self.local_tokens == 'ot':
      plan = self._predict_local(g_q, self.prototypes(g_q))[2]
    return self._decode(g_q, self.local_quantizer.lookup(local_ids_BxL), plan, colour_ids)

  def decode_generate(self, global_ids_BxG, rng=None, temperature: float = 1.0):
    """(image, predicted local ids) from global ids (+ colour ids) alone."""
    global_ids_BxG, colour_ids = colour.split_ids(global_ids_BxG, self.geometry)
    g_q = self.quantizer.lookup(global_ids_BxG)
    logits, _, plan = self._predict_local(g_q, self.prototypes(g_q))
    l_q, local_ids = self._generate_local(logits, rng, temperature)
    return self._decode(g_q, l_q, plan, colour_ids), local_ids

  def decode_ids(self, ids):
    """Compress-mode decoding from (global ids, local ids) or a [B, G (+ C) + L] array."""
    if isinstance(ids, (tuple, list)):
      return self.decode_compress(*ids)
    g = self.geometry.num_global_ids
    return self.decode_compress(ids[:, :g], ids[:, g:])

  def __call__(self, x_BxHxWxC):
    """Compress-mode reconstruction and every training signal (tokenizer stage)."""
    g_q, aux, patches, extra = self._encode_global(x_BxHxWxC)
    protos = self.prototypes(g_q)
    slots, f_BxNxF, ot_aux = self._local_slots(patches, extra, protos)
    l_q, laux = self.local_quantizer(slots)
    # The aligner predicts; unless generate-mode reconstruction trains through it, it must
    # not reshape the global tokens or prototypes it reads.
    sg = (lambda t: t) if self.generate_recon else jax.lax.stop_gradient
    logits, f_hat, plan_gen = self._predict_local(sg(g_q), sg(protos))
    colour_ids = aux.get('colour_ids')
    recon = self._decode(g_q, l_q, plan_gen, colour_ids)
    # What the losses (losses/terms.py) need: codes, 2D tokens and the aligner's outputs.
    out = {
        'ids': aux['ids'], 'z': aux['z'], 'codebook_loss': aux['codebook_loss'],
        'commit_loss': aux['commit_loss'], 'local_ids': laux['ids'], 'local_z': laux['z'],
        'local_codebook_loss': laux['codebook_loss'], 'local_commit_loss': laux['commit_loss'],
        'f_hat': f_hat, 'f': f_BxNxF, 'local_logits': logits,
        **ot_aux,
    }
    if 'soft_assignment_entropy' in aux:
      out['soft_assignment_entropy'] = aux['soft_assignment_entropy']
    if 'colour_ids' in aux:
      out['colour_ids'] = aux['colour_ids']
    if self.generate_recon:
      probs = jax.nn.softmax(logits)
      codes = self.local_quantizer.normalized_codebook()
      soft_q = probs @ codes
      if self.generate_local == 'soft':  # exactly what decode_generate decodes
        gen_q = soft_q
      else:  # straight-through argmax: forward = argmax-id decoding, soft gradient
        hard_q = jnp.take(codes, jnp.argmax(logits, -1), axis=0)
        gen_q = soft_q + jax.lax.stop_gradient(hard_q - soft_q)
      out['recon_generate'] = self._decode(g_q, gen_q, plan_gen, colour_ids)
    return recon, out


def build(config: ml_collections.ConfigDict, aligner_cfg=None) -> SelfBootTok:
  """The SelfBootTok a config describes; `aligner_cfg` swaps in another aligner size."""
  m = config.model
  return SelfBootTok(
      geometry=options_lib.Geometry.from_config(config), codebook_size=m.codebook_size,
      token_dim=m.token_dim,
      global_quantizer=m.global_quantizer,
      soft_temperature=m.soft_temperature, soft_straight_through=m.soft_straight_through,
      num_local_tokens=m.num_local_tokens, local_codebook_size=m.local_codebook_size,
      local_token_dim=m.local_token_dim, local_tokens=m.local_tokens,
      generate_local=m.generate_local,
      prototype_hidden=m.prototype_hidden, slot_positions=m.slot_positions,
      ot=ot_pool.OTConfig.from_config(m.ot),
      encoder_cfg=dict(m.encoder), decoder_cfg=dict(m.decoder),
      aligner_cfg=dict(aligner_cfg if aligner_cfg is not None else m.aligner),
      generate_recon=config.loss.w_generate > 0, quantizer_kind=m.quantizer,
      options=options_lib.TransformerOptions.from_config(m))

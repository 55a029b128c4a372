"""The 2D aligner: predicts an image's 2D tokens and its local-id logits from global tokens.

One Transformer over [N positional queries ; L slot queries ; G global tokens] (queries
attend to the global tokens and to each other, as in TiTok's decoder):
  - positional query i  -> f_hat_i, the predicted 2D token of patch i (B x N x F);
  - slot query j        -> s_j (B x L x D), seeded with the slot prototype P_j.
`logits(s, pooled)` turns slot states (plus, in 'ot' mode, the 2D prediction pooled into the
slot by the generate-side OT plan) into logits over the local codebook (B x L x K_local).
Everything it sees is a function of the global ids, so generate mode needs nothing else.
Its size is free: the aligner stage trains a larger one against the same frozen tokenizer.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from sbt_jax.models import options as options_lib
from sbt_jax.models import vit


class Aligner2D(nn.Module):
  num_patches: int
  feature_dim: int
  codebook_size: int
  size: Any  # the transformer's size: {'width', 'depth', 'num_heads', 'mlp_ratio'}
  options: options_lib.TransformerOptions = options_lib.TransformerOptions()

  @property
  def width(self) -> int:
    return self.size['width']

  def setup(self):
    width, dtype = self.width, self.options.dtype
    self.pos_queries = self.param('pos_queries', vit.posemb_init(None, 'embed'),
                                  (self.num_patches, width))
    self.global_embed = vit.Dense(width, dtype, 'global_embed', ('token', 'embed'),
                                  ('embed',))
    self.slot_embed = vit.Dense(width, dtype, 'slot_embed', ('token', 'embed'), ('embed',))
    self.transformer = self.options.transformer(self.size)
    self.to_feature = vit.Dense(self.feature_dim, dtype, 'to_feature', ('embed', 'token'),
                                ('token',))
    self.pooled_embed = vit.Dense(width, dtype, 'pooled_embed', ('token', 'embed'),
                                  ('embed',))
    self.head_norm = vit.layer_norm('head_norm')
    self.head_hidden = vit.Dense(width, dtype, 'head_hidden', ('embed', 'mlp'), ('mlp',))
    self.head_out = vit.Dense(self.codebook_size, dtype, 'head_out', ('mlp', 'vocab'),
                              ('vocab',))

  def __call__(self, g_q_BxGxT, protos_BxLxF):
    """(f_hat B x N x F predicted 2D tokens, s B x L x D slot states)."""
    b, g, _ = g_q_BxGxT.shape
    l = protos_BxLxF.shape[1]
    n = self.num_patches
    pos_BxNxD = jnp.broadcast_to(self.pos_queries, (b, n, self.width))
    slots_BxLxD = self.slot_embed(protos_BxLxF)
    glob_BxGxD = self.global_embed(g_q_BxGxT)
    h_BxSxD = self.transformer(jnp.concatenate([pos_BxNxD, slots_BxLxD, glob_BxGxD], 1),
                               keep=(0, n + l))
    return self.to_feature(h_BxSxD[:, :n]), h_BxSxD[:, n:]

  def logits(self, s_BxLxD, pooled_BxLxF=None):
    """Logits over local ids (B x L x K_local), float32."""
    h_BxLxD = s_BxLxD
    if pooled_BxLxF is not None:
      h_BxLxD = h_BxLxD + self.pooled_embed(pooled_BxLxF)
    h_BxLxD = nn.gelu(self.head_hidden(self.head_norm(h_BxLxD)))
    return self.head_out(h_BxLxD).astype(jnp.float32)

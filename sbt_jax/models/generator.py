"""The class-conditional transformer over global token ids, shared by MaskGIT and AR.

One token table holds the V codebook ids, the mask id V and the class tokens: class c is
token V + 1 + c, and class C (num_classes) is the null class used for classifier-free
guidance. The input is [class token ; G ids] (MaskGIT: ids may be the mask id) or
[class token ; ids[:-1]] (AR, causal); position i of the output predicts id i (AR) or the
id at input position i (MaskGIT, read at positions 1..G). Logits cover the V real ids only.

Shapes: B batch, G global tokens, S input length (G + 1 MaskGIT, G AR), V vocab, D width.

Padded sequences (TaTok's variable-length ids): `valid_BxS` hides padding positions from
every query (as attention keys); the losses skip them (trainers/generator.py).
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sbt_jax.models import vit

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def mask_id(vocab_size: int) -> int:
  return vocab_size


def class_tokens(labels_B, vocab_size: int):
  """Labels (0..C, C the null class) -> their token ids."""
  return vocab_size + 1 + labels_B.astype(jnp.int32)


class GeneratorTransformer(nn.Module):
  """seq_BxS token ids (positions position..position+S-1) -> logits_BxSxV (float32)."""
  vocab_size: int
  num_classes: int
  num_tokens: int
  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  causal: bool = False
  dtype: Any = jnp.float32
  attention_impl: str = 'auto'
  # KV-cache decoding (AR sampling): init on the full-length input, then one call per token.
  decode: bool = False

  @nn.compact
  def __call__(self, seq_BxS, position=0, valid_BxS=None):
    s = seq_BxS.shape[1]
    table = self.vocab_size + 1 + self.num_classes + 1
    x_BxSxD = nn.Embed(table, self.width, name='embed',
                       embedding_init=vit.posemb_init('vocab', 'embed'))(seq_BxS)
    pos_LxD = self.param('pos_embed', vit.posemb_init(None, 'embed'),
                         (self.num_tokens + 1, self.width))
    x_BxSxD = x_BxSxD + jax.lax.dynamic_slice_in_dim(pos_LxD, position, s, 0)[None]
    mask = None
    if self.causal and not self.decode:
      mask = jnp.tril(jnp.ones((s, s), bool))
    if valid_BxS is not None:
      keys_Bx1x1xS = valid_BxS[:, None, None, :]
      mask = keys_Bx1x1xS if mask is None else mask & keys_Bx1x1xS
    h_BxSxD = vit.Transformer(self.depth, self.num_heads, self.mlp_dim, self.dtype,
                              self.attention_impl, decode=self.decode,
                              name='transformer')(x_BxSxD, mask)
    return vit.Dense(self.vocab_size, self.dtype, 'head', ('embed', 'vocab'),
                     ('vocab',))(h_BxSxD)


def maskgit_inputs(ids_BxG, labels_B, vocab_size: int):
  """[class token ; ids] (ids may hold the mask id): the MaskGIT input, length G + 1."""
  return jnp.concatenate([class_tokens(labels_B, vocab_size)[:, None], ids_BxG], axis=1)


def ar_inputs(ids_BxG, labels_B, vocab_size: int):
  """[class token ; ids[:-1]]: the AR input, length G; output i predicts ids[i]."""
  return jnp.concatenate([class_tokens(labels_B, vocab_size)[:, None], ids_BxG[:, :-1]],
                         axis=1)


def build_generator(g: ml_collections.ConfigDict, vocab_size: int, num_tokens: int,
                    decode: bool = False) -> GeneratorTransformer:
  """The transformer a config's `generator` section describes, for a tokenizer's ids
  (generator.layout: ours, or a bytedance/1d-tokenizer layout: models/generator_reference.py)."""
  t = g.transformer
  if g.layout != 'sbt':
    from sbt_jax.models import generator_reference  # pylint: disable=g-import-not-at-top
    return generator_reference.build(
        g.layout, vocab_size=vocab_size, num_classes=g.num_classes, num_tokens=num_tokens,
        width=t.width, depth=t.depth, num_heads=t.num_heads, mlp_dim=t.mlp_ratio * t.width,
        dtype=DTYPES[g.compute_dtype], attention_impl=g.attention_impl)
  return GeneratorTransformer(
      vocab_size=vocab_size, num_classes=g.num_classes, num_tokens=num_tokens,
      width=t.width, depth=t.depth, num_heads=t.num_heads, mlp_dim=t.mlp_ratio * t.width,
      causal=g.type == 'ar', dtype=DTYPES[g.compute_dtype],
      attention_impl=g.attention_impl, decode=decode)

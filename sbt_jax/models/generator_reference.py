"""bytedance/1d-tokenizer's MaskGIT generators in its layouts (generator.layout), so its
released generators load and give its logits (docs/official_weights.md):

- 'reference_bert' (TiTok-L-32, B-64: modeling/maskgit.py ImageBert): a post-LN BERT
  (transformers' BertModel): word + position + token-type-0 embeddings, LayerNorm (eps
  1e-12); per layer separate q/k/v projections, LayerNorm(x + attention), exact GELU MLP,
  LayerNorm(x + MLP); a linear head over the V codebook ids.
- 'reference_uvit' (TiTok-S-128: UViTBert): pre-LN blocks (eps 1e-5, qkv without bias)
  in U-Net order: depth // 2 'in' blocks whose outputs are kept, a 'mid' block, depth // 2
  'out' blocks (depth = its num_hidden_layers: 2 (depth // 2) + 1 blocks in all) that first mix [x ; the matching kept output] with a linear layer; final
  LayerNorm and head.

Both keep our vocabulary (models/generator.py): V ids, the mask id V, class c as V + 1 + c,
the null class V + 1 + C; the input is [class ; G ids]; logits cover the V ids. Both are
bidirectional (generator.type='maskgit' only). Same call as GeneratorTransformer.

Shapes: B batch, S input length (G + 1), D width, H heads, K head dim, V codebook ids.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sbt_jax.models import attention as attention_lib
from sbt_jax.models import vit

LAYOUTS = ('reference_bert', 'reference_uvit')
BERT_LN_EPS = 1e-12
UVIT_LN_EPS = 1e-5


def _heads(x_BxSxD, module_name, num_heads, dtype, use_bias):
  """[B, S, D] -> [B, S, H, K] by one projection (BERT's query, key or value)."""
  d = x_BxSxD.shape[-1]
  return nn.DenseGeneral((num_heads, d // num_heads), dtype=dtype, name=module_name,
                         use_bias=use_bias, dot_general=vit.matmul_dot_general(dtype),
                         kernel_init=vit.dense_init('embed', 'heads', 'kv'),
                         bias_init=vit.zeros_init('heads', 'kv'))(x_BxSxD)


def _merge_heads(out_BxSxHxK, width, dtype, name):
  return nn.DenseGeneral(width, axis=(-2, -1), dtype=dtype, name=name,
                         dot_general=vit.matmul_dot_general(dtype),
                         kernel_init=vit.dense_init('heads', 'kv', 'embed'),
                         bias_init=vit.zeros_init('embed'))(out_BxSxHxK)


class _Generator(nn.Module):
  """Fields of models/generator.GeneratorTransformer that the samplers and trainer read."""
  vocab_size: int
  num_classes: int
  num_tokens: int
  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32
  attention_impl: str = 'auto'
  causal: bool = False  # always False: both layouts are bidirectional
  decode: bool = False  # no KV cache (MaskGIT only)

  @property
  def table(self) -> int:
    return self.vocab_size + 1 + self.num_classes + 1

  def _attend(self, q_BxSxHxK, k_BxSxHxK, v_BxSxHxK, valid_BxS):
    mask = None if valid_BxS is None else valid_BxS[:, None, None, :]
    return attention_lib.attention(q_BxSxHxK, k_BxSxHxK, v_BxSxHxK, mask, dtype=self.dtype,
                                   impl=self.attention_impl)

  def _head(self, h_BxSxD):
    return vit.Dense(self.vocab_size, self.dtype, 'lm_head', ('embed', 'vocab'),
                     ('vocab',))(h_BxSxD)


class ReferenceBert(_Generator):
  """ImageBert: transformers' BertModel (post-LN) + lm_head."""

  @nn.compact
  def __call__(self, seq_BxS, position=0, valid_BxS=None):
    s = seq_BxS.shape[1]
    x_BxSxD = nn.Embed(self.table, self.width, name='word_embeddings',
                       embedding_init=vit.posemb_init('vocab', 'embed'))(seq_BxS)
    pos_LxD = self.param('position_embeddings', vit.posemb_init(None, 'embed'),
                         (self.num_tokens + 1, self.width))
    type_1xD = self.param('token_type_embedding', vit.posemb_init(None, 'embed'),
                          (1, self.width))  # row 0 of BERT's token types (always 0)
    x_BxSxD = x_BxSxD + jax.lax.dynamic_slice_in_dim(pos_LxD, position, s, 0)[None] + type_1xD
    x_BxSxD = vit.layer_norm('embeddings_ln', BERT_LN_EPS)(x_BxSxD)
    for i in range(self.depth):
      x_BxSxD = self._layer(x_BxSxD, valid_BxS, f'layer{i}')
    return self._head(x_BxSxD)

  def _layer(self, x_BxSxD, valid_BxS, name):
    qkv = [_heads(x_BxSxD, f'{name}_{part}', self.num_heads, self.dtype, True)
           for part in ('query', 'key', 'value')]
    attn_BxSxD = _merge_heads(self._attend(*qkv, valid_BxS), self.width, self.dtype,
                              f'{name}_attention_out')
    x_BxSxD = vit.layer_norm(f'{name}_attention_ln', BERT_LN_EPS)(x_BxSxD + attn_BxSxD)
    h_BxSxM = vit.gelu(vit.Dense(self.mlp_dim, self.dtype, f'{name}_intermediate',
                                 ('embed', 'mlp'), ('mlp',))(x_BxSxD), exact=True)
    out_BxSxD = vit.Dense(self.width, self.dtype, f'{name}_output', ('mlp', 'embed'),
                          ('embed',))(h_BxSxM)
    return vit.layer_norm(f'{name}_output_ln', BERT_LN_EPS)(x_BxSxD + out_BxSxD)


class ReferenceUViT(_Generator):
  """UViTBert: embeddings + position embedding, U-Net-ordered pre-LN blocks, norm, head."""

  @nn.compact
  def __call__(self, seq_BxS, position=0, valid_BxS=None):
    s = seq_BxS.shape[1]
    x_BxSxD = nn.Embed(self.table, self.width, name='embeddings',
                       embedding_init=vit.posemb_init('vocab', 'embed'))(seq_BxS)
    pos_LxD = self.param('pos_embed', vit.posemb_init(None, 'embed'),
                         (self.num_tokens + 1, self.width))
    x_BxSxD = x_BxSxD + jax.lax.dynamic_slice_in_dim(pos_LxD, position, s, 0)[None]
    skips = []
    for i in range(self.depth // 2):
      x_BxSxD = self._block(x_BxSxD, valid_BxS, f'in_{i}')
      skips.append(x_BxSxD)
    x_BxSxD = self._block(x_BxSxD, valid_BxS, 'mid')
    for i in range(self.depth // 2):
      x_BxSxD = self._block(x_BxSxD, valid_BxS, f'out_{i}', skips.pop())
    return self._head(vit.layer_norm('norm', UVIT_LN_EPS)(x_BxSxD))

  def _block(self, x_BxSxD, valid_BxS, name, skip_BxSxD=None):
    if skip_BxSxD is not None:
      x_BxSxD = vit.Dense(self.width, self.dtype, f'{name}_skip_linear', (None, 'embed'),
                          ('embed',))(jnp.concatenate([x_BxSxD, skip_BxSxD], -1))
    h_BxSxD = vit.layer_norm(f'{name}_norm1', UVIT_LN_EPS)(x_BxSxD)
    qkv = nn.DenseGeneral((3, self.num_heads, self.width // self.num_heads), dtype=self.dtype,
                          name=f'{name}_qkv', use_bias=False,
                          dot_general=vit.matmul_dot_general(self.dtype),
                          kernel_init=vit.dense_init('embed', None, 'heads', 'kv'))(h_BxSxD)
    attn = self._attend(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], valid_BxS)
    x_BxSxD = x_BxSxD + _merge_heads(attn, self.width, self.dtype, f'{name}_proj')
    h_BxSxD = vit.layer_norm(f'{name}_norm2', UVIT_LN_EPS)(x_BxSxD)
    h_BxSxM = vit.gelu(vit.Dense(self.mlp_dim, self.dtype, f'{name}_fc1', ('embed', 'mlp'),
                                 ('mlp',))(h_BxSxD), exact=True)
    return x_BxSxD + vit.Dense(self.width, self.dtype, f'{name}_fc2', ('mlp', 'embed'),
                               ('embed',))(h_BxSxM)


def build(layout: str, **fields):
  return {'reference_bert': ReferenceBert, 'reference_uvit': ReferenceUViT}[layout](**fields)

"""CRT (causally regularized tokenization, arXiv 2412.16326): a small causal transformer
that predicts each pre-quantization global token from the ones before it.

The tokenizer pays `lambda(step) * L2(prediction, next token)`, so its tokens become easier
for a next-token model to predict; the predictor trains on the same L2 loss with its own
optimizer (trainers/crt.py). The tokens are the quantizer's input z, l2-normalised (aux['z']
of both the VQ and the soft quantizer, whose codebooks are l2-normalised too), and the
prediction is l2-normalised as well: the loss then measures only direction, which is all the
cosine-similarity quantizer reads (mean squared error of unit vectors = (2 - 2 cos) / T).

Shapes: B batch, G global tokens, T token_dim, D predictor width.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sbt_jax.models import quantizer as quantizer_lib
from sbt_jax.models import vit


class CausalTokenPredictor(nn.Module):
  """z_BxGxT -> pred_Bx(G-1)xT: output i (having seen tokens 0..i) predicts token i + 1."""
  num_tokens: int
  token_dim: int
  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32
  attention_impl: str = 'auto'

  @nn.compact
  def __call__(self, z_BxGxT):
    x_BxSxT = z_BxGxT[:, :-1].astype(jnp.float32)  # S = G - 1 inputs
    s = x_BxSxT.shape[1]
    h_BxSxD = vit.Dense(self.width, self.dtype, 'token_embed', ('token', 'embed'),
                        ('embed',))(x_BxSxT)
    h_BxSxD = h_BxSxD + self.param('pos_embed', vit.posemb_init(None, 'embed'),
                                   (self.num_tokens - 1, self.width))[:s]
    mask_SxS = jnp.tril(jnp.ones((s, s), bool))
    h_BxSxD = vit.Transformer(self.depth, self.num_heads, self.mlp_dim, self.dtype,
                              self.attention_impl, name='transformer')(h_BxSxD, mask_SxS)
    pred_BxSxT = vit.Dense(self.token_dim, self.dtype, 'head', ('embed', 'token'),
                           ('token',))(h_BxSxD)
    return quantizer_lib.l2_normalize(pred_BxSxT.astype(jnp.float32))


def next_token_loss(predictor: CausalTokenPredictor, params, z_BxGxT):
  """Mean squared error between the predicted and the actual next tokens (G - 1 of them)."""
  pred_BxSxT = predictor.apply({'params': params}, z_BxGxT)
  return jnp.mean(jnp.square(pred_BxSxT - z_BxGxT[:, 1:].astype(jnp.float32)))


def regularizer_and_predictor_losses(predictor: CausalTokenPredictor, params, z_BxGxT):
  """(term for the tokenizer, term for the predictor), equal in value.

  The first differentiates only into z (predictor params held fixed), the second only into
  the predictor (z held fixed), so one gradient of their sum gives each side its own loss.
  """
  reg = next_token_loss(predictor, jax.lax.stop_gradient(params), z_BxGxT)
  own = next_token_loss(predictor, params, jax.lax.stop_gradient(z_BxGxT))
  return reg, own


def ramp_weight(step, crt: ml_collections.ConfigDict):
  """lambda(step): linear from 0 at step 0 to crt.weight at crt.ramp_steps, then constant."""
  if crt.ramp_steps <= 0:
    return jnp.asarray(crt.weight, jnp.float32)
  frac = jnp.minimum(jnp.asarray(step, jnp.float32) / crt.ramp_steps, 1.0)
  return crt.weight * frac


def build_predictor(config: ml_collections.ConfigDict) -> CausalTokenPredictor:
  """The predictor config.crt describes, over config.model's global tokens."""
  p = config.crt.predictor
  return CausalTokenPredictor(
      num_tokens=config.model.num_global_tokens, token_dim=config.model.token_dim,
      width=p.width, depth=p.depth, num_heads=p.num_heads, mlp_dim=p.mlp_ratio * p.width,
      attention_impl=config.model.attention_impl)

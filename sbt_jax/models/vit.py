"""Pre-LayerNorm ViT blocks shared by every encoder, decoder and aligner.

Parameters carry logical axis names ('embed', 'mlp', 'heads', 'kv'); the mesh rules in the
config map them to mesh axes. `dtype` is the compute dtype, params stay float32.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def dense_init(*names):
  return nn.with_logical_partitioning(nn.initializers.xavier_uniform(), names)


def zeros_init(*names):
  return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)


def layer_norm(dtype, name=None):
  return nn.LayerNorm(
      epsilon=1e-6, dtype=dtype, name=name,
      scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ('embed',)),
      bias_init=zeros_init('embed'))


class Attention(nn.Module):
  """Multi-head self-attention (fused dot_product_attention)."""
  num_heads: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxLxD, mask_BxHxLxL=None):
    d = x_BxLxD.shape[-1]
    head_dim = d // self.num_heads
    qkv = nn.DenseGeneral(
        (3, self.num_heads, head_dim), dtype=self.dtype, name='qkv',
        kernel_init=dense_init('embed', None, 'heads', 'kv'),
        bias_init=zeros_init(None, 'heads', 'kv'))(x_BxLxD)
    q_BxLxHxK, k_BxLxHxK, v_BxLxHxK = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    out_BxLxHxK = jax.nn.dot_product_attention(
        q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, mask=mask_BxHxLxL)
    return nn.DenseGeneral(
        d, axis=(-2, -1), dtype=self.dtype, name='out',
        kernel_init=dense_init('heads', 'kv', 'embed'),
        bias_init=zeros_init('embed'))(out_BxLxHxK)


class MlpBlock(nn.Module):
  mlp_dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxLxD):
    d = x_BxLxD.shape[-1]
    h_BxLxM = nn.Dense(self.mlp_dim, dtype=self.dtype, name='fc1',
                       kernel_init=dense_init('embed', 'mlp'),
                       bias_init=zeros_init('mlp'))(x_BxLxD)
    h_BxLxM = nn.gelu(h_BxLxM)
    return nn.Dense(d, dtype=self.dtype, name='fc2',
                    kernel_init=dense_init('mlp', 'embed'),
                    bias_init=zeros_init('embed'))(h_BxLxM)


class Block(nn.Module):
  num_heads: int
  mlp_dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxLxD, mask=None):
    x_BxLxD = nn.with_logical_constraint(x_BxLxD, ('batch', 'length', 'embed'))
    x_BxLxD = x_BxLxD + Attention(self.num_heads, self.dtype, name='attn')(
        layer_norm(self.dtype, 'ln1')(x_BxLxD), mask)
    x_BxLxD = x_BxLxD + MlpBlock(self.mlp_dim, self.dtype, name='mlp')(
        layer_norm(self.dtype, 'ln2')(x_BxLxD))
    return x_BxLxD


class Transformer(nn.Module):
  """`depth` blocks and a final LayerNorm."""
  depth: int
  num_heads: int
  mlp_dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxLxD, mask=None):
    for i in range(self.depth):
      x_BxLxD = Block(self.num_heads, self.mlp_dim, self.dtype, name=f'block{i}')(
          x_BxLxD, mask)
    return layer_norm(self.dtype, 'ln_out')(x_BxLxD)


def posemb_init(*names):
  return nn.with_logical_partitioning(nn.initializers.normal(stddev=0.02), names)


def patchify(x_BxHxWxC, p):
  b, h, w, c = x_BxHxWxC.shape
  x = x_BxHxWxC.reshape(b, h // p, p, w // p, p, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(x_BxNxP, p, h, w, c):
  b = x_BxNxP.shape[0]
  x = x_BxNxP.reshape(b, h // p, w // p, p, p, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)

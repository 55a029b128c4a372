"""Finite scalar quantization (FSQ; Mentzer et al. 2023), a drop-in for VectorQuantizer.

Each of the T values of a token is bounded with tanh and rounded to one of `levels`
evenly spaced values in [-1, 1] (straight-through); the id is the T digits in base `levels`,
so the implicit codebook has levels ** T entries and nothing to learn, collapse or restart.
Unlike the cosine VQ, a token keeps its magnitude: on natural RGB tiles the cosine VQ learns
no detail within a CPU budget where FSQ at the same bits does (docs/natural_rgb.md).

Same interface and aux keys as quantizer.VectorQuantizer (ids, z, codebook_loss and
commit_loss, both zero), so the losses, usage statistics and generators treat both alike;
spec.Codebook(restartable=False) keeps dead-code restarts off it. Always float32.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp


def levels_for(codebook_size: int, token_dim: int) -> int:
  """The levels per value with levels ** token_dim == codebook_size, or 0 if none."""
  levels = round(codebook_size ** (1.0 / token_dim))
  return levels if levels >= 2 and levels ** token_dim == codebook_size else 0


class FSQuantizer(nn.Module):
  """Rounds each value of z to `levels` steps; ids are base-`levels` numbers (T digits)."""
  codebook_size: int
  token_dim: int

  @property
  def levels(self) -> int:
    levels = levels_for(self.codebook_size, self.token_dim)
    if not levels:
      raise ValueError(f'FSQ needs codebook_size = levels ** token_dim; got '
                       f'{self.codebook_size} and {self.token_dim}')
    return levels

  def _digits_to_values(self, digits):
    half = (self.levels - 1) / 2
    return (digits.astype(jnp.float32) - half) / half

  def lookup(self, ids):
    """ids (any shape) -> code vectors (shape + (token_dim,)), values in [-1, 1]."""
    powers_T = self.levels ** jnp.arange(self.token_dim - 1, -1, -1)
    digits = (ids[..., None] // powers_T) % self.levels
    return self._digits_to_values(digits)

  def normalized_codebook(self):
    """Every code vector (K x T), as VectorQuantizer.normalized_codebook."""
    return self.lookup(jnp.arange(self.codebook_size))

  def __call__(self, z_BxGxT):
    half = (self.levels - 1) / 2
    # tanh keeps each value inside [-half, half] in units of one step (bounded, continuous).
    bounded_BxGxT = jnp.tanh(z_BxGxT.astype(jnp.float32)) * half
    digits_BxGxT = jnp.clip(jnp.round(bounded_BxGxT + half), 0, self.levels - 1)
    q_BxGxT = self._digits_to_values(digits_BxGxT)
    q_st_BxGxT = bounded_BxGxT / half + jax.lax.stop_gradient(q_BxGxT - bounded_BxGxT / half)
    powers_T = self.levels ** jnp.arange(self.token_dim - 1, -1, -1)
    ids_BxG = jnp.sum(digits_BxGxT.astype(jnp.int32) * powers_T, axis=-1)
    zero = jnp.zeros((), jnp.float32)
    aux = {'ids': ids_BxG, 'z': bounded_BxGxT / half, 'codebook_loss': zero,
           'commit_loss': zero}
    return q_st_BxGxT, aux

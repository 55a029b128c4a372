"""What every tokenizer family shares: image/token geometry and transformer options.

One frozen dataclass each, passed to the Flax modules as a single field, so a new option
is added in one place (and `from_config` is the only code that reads config fields for it).
"""
import dataclasses
from typing import Any

import jax.numpy as jnp
import ml_collections

from sbt_jax.models import colour
from sbt_jax.models import vit

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class Geometry:
  """Images of image_size^2 x channels, cut into (image_size / patch_size)^2 patches, and
  G = num_global_tokens 1D tokens (TiTok's latent tokens, SelfBootTok's global tokens), and
  with colour_levels > 0 the mean colour as C more global ids (models/colour.py)."""
  image_size: int
  channels: int
  patch_size: int
  num_global_tokens: int
  colour_levels: int = 0  # 0: no colour ids

  @property
  def num_colour_ids(self) -> int:
    return colour.num_ids(self.colour_levels, self.channels)

  @property
  def num_global_ids(self) -> int:
    """Global ids per image: the G learned ones, then the colour ids."""
    return self.num_global_tokens + self.num_colour_ids

  @property
  def num_patches(self) -> int:
    return (self.image_size // self.patch_size) ** 2

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return (self.image_size, self.image_size, self.channels)

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'Geometry':
    return cls(image_size=config.data.image_size, channels=config.data.channels,
               patch_size=config.model.patch_size,
               num_global_tokens=config.model.num_global_tokens,
               colour_levels=config.model.colour_levels)


@dataclasses.dataclass(frozen=True)
class TransformerOptions:
  """How every transformer of a model computes (not its size: see vit.sizes), and whether
  the tokenizer's encoder and decoder mix rows spatially (titok.spatial_mix) and whether
  its decoder's pixel head starts at zero."""
  dtype: Any = jnp.float32
  attention_impl: str = 'auto'
  remat_policy: str = 'none'
  scan_layers: bool = False
  spatial_mix: bool = False
  zero_pixel_head: bool = False
  # LayerNorm epsilon and erf GELU (the reference TiTok layout sets 1e-5 and True).
  ln_eps: float = vit.LN_EPS
  exact_gelu: bool = False

  @classmethod
  def from_config(cls, model: ml_collections.ConfigDict) -> 'TransformerOptions':
    return cls(dtype=DTYPES[model.compute_dtype], attention_impl=model.attention_impl,
               remat_policy=model.remat_policy, scan_layers=model.scan_layers,
               spatial_mix=model.spatial_mix, zero_pixel_head=model.zero_pixel_head)

  def transformer(self, size, name: str = 'transformer') -> vit.Transformer:
    """A vit.Transformer of `size` (a config dict: width, depth, num_heads, mlp_ratio)."""
    _, depth, num_heads, mlp_dim = vit.sizes(size)
    return vit.Transformer(depth, num_heads, mlp_dim, self.dtype, self.attention_impl,
                           self.remat_policy, self.scan_layers, ln_eps=self.ln_eps,
                           exact_gelu=self.exact_gelu, name=name)

"""config.model.name -> the tokenizer family's spec (one place to add a family member).

Code outside models/ reaches a family only through `spec(config)` (models/spec.py).
"""
import ml_collections

from sbt_jax.models import selfboottok_spec
from sbt_jax.models import spec as spec_lib
from sbt_jax.models import tatok_spec
from sbt_jax.models import titok_spec

SPECS = {s.name: s for s in (titok_spec.TiTokSpec(), selfboottok_spec.SelfBootTokSpec(),
                             tatok_spec.TaTokSpec())}
MODEL_NAMES = tuple(SPECS)


def spec(config: ml_collections.ConfigDict) -> spec_lib.TokenizerSpec:
  """The spec of config.model.name (ValueError naming the known families otherwise)."""
  name = config.model.name
  if name not in SPECS:
    raise ValueError(f'Unknown config.model.name={name!r}; known: {MODEL_NAMES}')
  return SPECS[name]


def build_tokenizer(config: ml_collections.ConfigDict, aligner_cfg=None):
  """The module config describes; `aligner_cfg` swaps in another 2D aligner size."""
  return spec(config).build(config, aligner_cfg)

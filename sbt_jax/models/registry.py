"""config.model.name -> the tokenizer module (one place to add a family member)."""
import ml_collections

from sbt_jax.models import selfboottok
from sbt_jax.models import tatok
from sbt_jax.models import titok

MODEL_NAMES = ('titok', 'selfboottok', 'tatok')


def build_tokenizer(config: ml_collections.ConfigDict, aligner_cfg=None):
  name = config.model.name
  if name == 'titok':
    return titok.build_tokenizer(config)
  if name == 'selfboottok':
    return selfboottok.build(config, aligner_cfg)
  if name == 'tatok':
    return tatok.build(config)
  raise ValueError(f'Unknown config.model.name={name!r}; known: {MODEL_NAMES}')

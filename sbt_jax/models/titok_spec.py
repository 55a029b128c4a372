"""TiTok as the rest of sbt_jax sees it (see models/spec.py): G global ids, one codebook."""
import jax.numpy as jnp

from sbt_jax.models import options as options_lib
from sbt_jax.models import spec as spec_lib
from sbt_jax.models import titok


class TiTokGlobalTokenizer:
  """TiTok for a generator: every token is global; decoding is the TiTok decoder."""
  padded = False
  cache_tag = ''

  def __init__(self, config):
    self.config = config
    self.model = titok.build_tokenizer(config)
    self.vocab_size = config.model.codebook_size
    self.num_tokens = spec_lib.num_global_ids(config)  # G (+ C colour ids)
    self.image_shape = options_lib.Geometry.from_config(config).image_shape

  def encode_global_ids(self, params, x_BxHxWxC):
    return self.model.apply({'params': params['tokenizer']}, x_BxHxWxC,
                            method='encode_ids').astype(jnp.int32)

  def decode_global_ids(self, params, ids_BxG):
    return self.model.apply({'params': params['tokenizer']}, ids_BxG, method='decode_ids')


class TiTokSpec(spec_lib.TokenizerSpec):
  name = 'titok'

  def build(self, config, aligner_cfg=None):
    del aligner_cfg
    return titok.build_tokenizer(config)

  def global_tokenizer(self, config, rate=-1.0, aligner_cfg=None):
    del rate, aligner_cfg
    return TiTokGlobalTokenizer(config)

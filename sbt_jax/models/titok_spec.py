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
  has_titok_layouts = True

  def validate(self, config, fail):
    m = config.model
    if m.layout == 'sbt':
      if m.decoder_patch_size:
        fail(f"model.decoder_patch_size={m.decoder_patch_size} needs a reference "
             "model.layout (our layout has one patch size: model.patch_size)")
      return
    decoder_patch = m.decoder_patch_size or m.patch_size
    if m.layout == 'reference_legacy' and decoder_patch != 16:
      fail(f"model.layout='reference_legacy' decodes each token-grid cell to 16 x 16 pixels "
           f'(the MaskGIT-VQGAN); its decoder patch size must be 16, got {decoder_patch}')
    if m.decoder_patch_size < 0 or (m.decoder_patch_size
                                    and config.data.image_size % m.decoder_patch_size):
      fail(f'data.image_size={config.data.image_size} is not divisible by '
           f'model.decoder_patch_size={m.decoder_patch_size}')
    for key in ('spatial_mix', 'zero_pixel_head'):
      if m[key]:
        fail(f"model.{key}=True is an option of our layout; model.layout={m.layout!r} "
             'has no such part')
    if m.colour_levels:
      fail(f'model.colour_levels={m.colour_levels}: model.layout={m.layout!r} codes the '
           'whole image in its tokens; set 0')
    if m.quantizer != 'vq':
      fail(f"model.quantizer={m.quantizer!r}: model.layout={m.layout!r} has a 'vq' quantizer")

  def build(self, config, aligner_cfg=None):
    del aligner_cfg
    return titok.build_tokenizer(config)

  def global_tokenizer(self, config, rate=-1.0, aligner_cfg=None):
    del rate, aligner_cfg
    return TiTokGlobalTokenizer(config)

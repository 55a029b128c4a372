"""TiTok as the rest of sbt_jax sees it (see models/spec.py): G global ids, one codebook
(model.quantizer='vae': G continuous latents, no codebook, a KL term)."""
import jax
import jax.numpy as jnp

from sbt_jax.models import options as options_lib
from sbt_jax.models import spec as spec_lib
from sbt_jax.models import titok


class TiTokGlobalTokenizer:
  """TiTok for a generator: every token is global; decoding is the TiTok decoder."""
  padded = False
  cache_tag = ''

  def __init__(self, config):
    if config.model.quantizer == 'vae':
      raise ValueError("a generator models ids; this tokenizer (model.quantizer='vae') has "
                       'continuous latents')
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
    if m.quantizer == 'vae' and m.colour_levels:
      fail(f"model.colour_levels={m.colour_levels}: colour ids join a tokenizer's ids; "
           "model.quantizer='vae' has continuous latents")
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
    allowed = ('vq',) if m.layout == 'reference_legacy' else ('vq', 'vae')
    if m.quantizer not in allowed:
      fail(f'model.quantizer={m.quantizer!r}: model.layout={m.layout!r} has one of {allowed}')

  def build(self, config, aligner_cfg=None):
    del aligner_cfg
    return titok.build_tokenizer(config)

  # --- model.quantizer='vae' ---------------------------------------------------------------

  def codebooks(self, config):
    return () if config.model.quantizer == 'vae' else super().codebooks(config)

  def loss_terms(self, config):
    return (('kl', 'kl_weight'),) if config.model.quantizer == 'vae' else ()

  def train_args(self, rng, batch_size, config):
    """VAE: the posterior's standard-normal noise (training decodes a sample)."""
    if config.model.quantizer != 'vae':
      return ()
    m = config.model
    return (jax.random.normal(rng, (batch_size, m.num_global_tokens, m.token_dim)),)

  def eval_outputs(self, model, params, x_BxHxWxC, aux, rng, temperature):
    if 'ids' not in aux:  # VAE: no ids to count
      return {}, {}, {}
    return super().eval_outputs(model, params, x_BxHxWxC, aux, rng, temperature)

  def global_tokenizer(self, config, rate=-1.0, aligner_cfg=None):
    del rate, aligner_cfg
    return TiTokGlobalTokenizer(config)

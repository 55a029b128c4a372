"""TaTok as the rest of sbt_jax sees it (see models/spec.py).

Stored ids at rate r: [B, G + N], the G global ids, then the kept patch ids in
decreasing-entropy order, padded with -1 (any [B, G + M], M <= N, decodes). With colour ids
on (models/colour.py), G counts the C colour ids after the learned global ids.
"""
import jax.numpy as jnp
import numpy as np

from sbt_jax.models import options as options_lib
from sbt_jax.models import spec as spec_lib
from sbt_jax.models import tatok


class TaTokGlobalTokenizer:
  """TaTok: the sequence is [G global ids ; kept patch ids in decreasing-entropy order],
  padded with -1 to G + N (the kept count varies per image). Patch id p is token K_g + p
  (one vocabulary of K_g + K_p ids). Decoding takes the first k(g, r) patch tokens, k the
  count DTF keeps at rate r for the (sampled) global ids g, so a sampler may fill every
  position: with an AR generator, tokens past k never influence the ones before them.
  """
  padded = True

  def __init__(self, config, rate: float = -1.0):
    self.config = config
    self.model = tatok.build(config)
    m = config.model
    self.rate = float(m.tatok.eval_rate if rate < 0 else rate)
    if self.rate > 1:
      raise ValueError(f'generator.tatok_rate={rate}: the rate must be in [0, 1]')
    self.cache_tag = f' rate={self.rate:g}'
    self.num_global = spec_lib.num_global_ids(config)  # G (+ C colour ids)
    self.global_vocab = m.codebook_size
    self.vocab_size = m.codebook_size + m.tatok.patch_codebook_size
    self.num_tokens = self.num_global + self.model.num_patches
    self.image_shape = options_lib.Geometry.from_config(config).image_shape

  def encode_global_ids(self, params, x_BxHxWxC):
    ids_BxS = self.model.apply({'params': params['tokenizer']}, x_BxHxWxC, self.rate,
                               method='encode_ids')
    g = self.num_global
    patch = jnp.where(ids_BxS[:, g:] >= 0, ids_BxS[:, g:] + self.global_vocab, -1)
    return jnp.concatenate([ids_BxS[:, :g], patch], axis=1).astype(jnp.int32)

  def decode_global_ids(self, params, ids_BxS):
    g = self.num_global
    global_BxG = jnp.clip(ids_BxS[:, :g], 0, self.global_vocab - 1)
    # A patch position holding a global id (never seen in training) decodes as patch id 0.
    patch = jnp.where(ids_BxS[:, g:] >= 0, jnp.maximum(ids_BxS[:, g:] - self.global_vocab, 0),
                      -1)
    return self.model.apply({'params': params['tokenizer']},
                            jnp.concatenate([global_BxG, patch], axis=1), self.rate,
                            method='decode_ids')


class TaTokSpec(spec_lib.TokenizerSpec):
  name = 'tatok'
  uses_rate = True
  logged_metrics = ('patch_entropy', 'kept_fraction', 'tokens_per_image')

  def build(self, config, aligner_cfg=None):
    del aligner_cfg
    return tatok.build(config)

  def validate(self, config, fail):
    t = config.model.tatok
    for key in ('train_rate_min', 'train_rate_max', 'eval_rate'):
      if not 0.0 <= t[key] <= 1.0:
        fail(f'model.tatok.{key}={t[key]} must be in [0, 1]')
    if t.train_rate_min > t.train_rate_max:
      fail(f'model.tatok.train_rate_min={t.train_rate_min} > train_rate_max='
           f'{t.train_rate_max}')
    if t.aligner.width % t.aligner.num_heads:
      fail(f'model.tatok.aligner.width={t.aligner.width} is not divisible by num_heads='
           f'{t.aligner.num_heads}')

  def codebooks(self, config):
    t = config.model.tatok
    return super().codebooks(config) + (
        spec_lib.book(config, 'patch_quantizer', t.patch_codebook_size, t.patch_token_dim,
                      'patch_'),)

  def loss_terms(self, config):
    del config
    return (('patch_ce', 'patch_ce_weight'),)

  def train_args(self, rng, batch_size, config):
    """One information-loss rate per image, so one model serves every rate."""
    return (tatok.sample_rates(rng, batch_size, config.model.tatok),)

  def eval_outputs(self, model, params, x_BxHxWxC, aux, rng, temperature):
    """Patch ids and the stored tokens per image at the eval rate."""
    del model, params, x_BxHxWxC, rng, temperature
    return ({'ids': aux['ids'], 'patch_ids': aux['patch_ids']},
            {'tokens_per_image': aux['tokens_per_image']}, {})

  def default_rate(self, config):
    return config.model.tatok.eval_rate

  def ids_per_image(self, config, mode):
    del mode
    return spec_lib.num_global_ids(config) + options_lib.Geometry.from_config(
        config).num_patches

  def encode_fn(self, model, mode):
    del mode
    return lambda p, x, rate: model.apply({'params': p}, x, rate, method='encode_ids')

  def check_ids(self, config, ids):
    """[B, G + M]: global ids, then kept patch ids (a prefix) padded with -1."""
    ids = np.asarray(ids)
    m = config.model
    g, k_patch = spec_lib.num_global_ids(config), m.tatok.patch_codebook_size
    max_width = self.ids_per_image(config, 'compress')
    if ids.ndim != 2 or not g <= ids.shape[1] <= max_width:
      raise ValueError(f'TaTok decode expects ids of shape [B, G + M] with G={g} and '
                       f'M <= {max_width - g} patch tokens; got {ids.shape}')
    ids = spec_lib.as_int_ids(ids)
    spec_lib.check_global_ids(config, ids)
    patch = ids[:, g:]
    if patch.size and patch.max() >= k_patch:
      raise ValueError(f'patch ids must be in [0, {k_patch}) (or -1 for padding); got max '
                       f'{patch.max()}')
    valid = patch >= 0
    if np.any(valid[:, 1:] & ~valid[:, :-1]) or np.any(patch < -1):
      raise ValueError('patch ids must be the kept tokens first, then -1 padding only')
    return ids, 'compress'

  def id_histograms(self, config, ids, mode):
    out = super().id_histograms(config, ids, mode)
    patch = ids[:, spec_lib.num_global_ids(config):]
    out['patch_'] = (patch[patch >= 0], config.model.tatok.patch_codebook_size)
    return out

  def ids_metrics_fn(self, model, config, mode):
    del model, mode
    g = spec_lib.num_global_ids(config)

    def tokens_per_image(params, ids):
      del params
      return {'tokens_per_image': (g + jnp.sum(ids[:, g:] >= 0, axis=1)).astype(jnp.float32)}
    return tokens_per_image

  def global_tokenizer(self, config, rate=-1.0, aligner_cfg=None):
    del aligner_cfg
    return TaTokGlobalTokenizer(config, rate)

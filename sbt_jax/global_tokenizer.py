"""What a generator needs from a frozen tokenizer: its global ids, and images from them.

An adapter is a small object with

  vocab_size: int                     # ids are in [0, vocab_size)
  num_tokens: int                     # G, ids per image
  image_shape: tuple[int, int, int]   # H, W, C of the images it encodes and decodes
  encode_global_ids(params, x_BxHxWxC) -> ids_BxG      (pure, jittable)
  decode_global_ids(params, ids_BxG) -> x_BxHxWxC      (pure, jittable, in [-1, 1] range)

and two attributes with defaults: `padded` (ids may hold -1 padding: variable-length
sequences, scored and attended only where valid) and `cache_tag` (appended to the token
cache's tokenizer identity, e.g. TaTok's rate). `params` is the dict `load` returns ({'tokenizer': ...}, plus e.g. {'aligner': ...}
for a tokenizer that decodes generate-mode through an aligner). Generators only ever see
these four things, so a new tokenizer family needs one adapter class here and an entry
in ADAPTERS (keyed by the tokenizer run's config.model.name). Swapping the aligner changes
`params` only: the generator is not retrained.
"""
import jax.numpy as jnp
import ml_collections

from sbt_jax import inference
from sbt_jax.models import registry
from sbt_jax.models import titok


class TiTokGlobalTokenizer:
  """TiTok: every latent token is global; decode is the TiTok decoder."""
  padded = False
  cache_tag = ''

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.model = titok.build_tokenizer(config)
    self.vocab_size = config.model.codebook_size
    self.num_tokens = config.model.num_latent_tokens
    self.image_shape = (config.data.image_size, config.data.image_size, config.data.channels)

  def encode_global_ids(self, params, x_BxHxWxC):
    _, aux = self.model.apply({'params': params['tokenizer']}, x_BxHxWxC, method='encode')
    return aux['ids'].astype(jnp.int32)

  def decode_global_ids(self, params, ids_BxG):
    return self.model.apply({'params': params['tokenizer']}, ids_BxG, method='decode_ids')

  def load_aligner(self, aligner_workdir, mesh):
    del mesh
    raise ValueError(f'aligner_workdir={aligner_workdir!r}: a TiTok tokenizer decodes from '
                     'its global ids alone and has no aligner.')


class SelfBootTokGlobalTokenizer:
  """SelfBootTok in generate mode: the generator models the G global ids only; decoding
  predicts the L local ids with the aligner (params['aligner'] when an aligner-stage run is
  loaded, else the tokenizer's own) and decodes global + local."""
  padded = False
  cache_tag = ''

  def __init__(self, config: ml_collections.ConfigDict, aligner_config=None):
    self.config = config
    self.model = registry.build_tokenizer(
        config, aligner_cfg=None if aligner_config is None else aligner_config.aligner.model)
    self.vocab_size = config.model.codebook_size
    self.num_tokens = config.model.num_latent_tokens
    self.image_shape = (config.data.image_size, config.data.image_size, config.data.channels)
    # Local ids: argmax of the aligner (0) or sampled at this temperature.
    self.local_temperature = 0.0

  def _params(self, params):
    if 'aligner' in params:
      return {**params['tokenizer'], 'aligner': params['aligner']}
    return params['tokenizer']

  def encode_global_ids(self, params, x_BxHxWxC):
    ids = self.model.apply({'params': self._params(params)}, x_BxHxWxC,
                           method='encode_global')
    return ids.astype(jnp.int32)

  def decode_global_ids(self, params, ids_BxG, rng=None):
    images, _ = self.model.apply({'params': self._params(params)}, ids_BxG,
                                 rng if self.local_temperature > 0 else None,
                                 self.local_temperature, method='decode_generate')
    return images

  def load_aligner(self, aligner_workdir, mesh):
    """{'aligner': params} of a stage='aligner' run trained against this tokenizer."""
    al_config = inference.load_config(aligner_workdir)
    if al_config.stage != 'aligner':
      raise ValueError(f'aligner_workdir={aligner_workdir!r} is a {al_config.stage!r} run, '
                       "not stage='aligner'")
    _, _, params, _ = inference.restore_run(aligner_workdir, None, mesh)
    # The aligner has its own size: rebuild the model around it.
    self.model = registry.build_tokenizer(self.config, aligner_cfg=al_config.aligner.model)
    return {'aligner': params}


class TaTokGlobalTokenizer:
  """TaTok: the sequence is [G global ids ; kept patch ids in decreasing-entropy order],
  padded with -1 to G + N (the kept count varies per image). Patch id p is token K_g + p
  (one vocabulary of K_g + K_p ids). Decoding takes the first k(g, r) patch tokens, k the
  count DTF keeps at rate r for the (sampled) global ids g, so a sampler may fill every
  position: with an AR generator, tokens past k never influence the ones before them.
  """
  padded = True

  def __init__(self, config: ml_collections.ConfigDict, rate: float = -1.0):
    self.config = config
    self.model = registry.build_tokenizer(config)
    m = config.model
    self.rate = float(m.tatok.eval_rate if rate < 0 else rate)
    if self.rate > 1:
      raise ValueError(f'generator.tatok_rate={rate}: the rate must be in [0, 1]')
    self.cache_tag = f' rate={self.rate:g}'
    self.num_global = m.num_latent_tokens
    self.global_vocab = m.codebook_size
    self.vocab_size = m.codebook_size + m.tatok.patch_codebook_size
    self.num_tokens = m.num_latent_tokens + self.model.num_patches
    self.image_shape = (config.data.image_size, config.data.image_size, config.data.channels)

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

  def load_aligner(self, aligner_workdir, mesh):
    del mesh
    raise ValueError(f'aligner_workdir={aligner_workdir!r}: TaTok has no aligner stage.')


ADAPTERS = {'titok': TiTokGlobalTokenizer, 'selfboottok': SelfBootTokGlobalTokenizer,
            'tatok': TaTokGlobalTokenizer}


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The tokenizer run's config (FileNotFoundError naming the path when absent)."""
  return inference.load_config(workdir)


def adapter_for(config: ml_collections.ConfigDict, rate: float = -1.0):
  """The adapter of a tokenizer run's config (rate: TaTok's r; -1 its eval_rate)."""
  name = config.model.name
  if name not in ADAPTERS:
    raise ValueError(f'No global-token adapter for tokenizer model.name={name!r}; known: '
                     f'{sorted(ADAPTERS)}')
  if name == 'tatok':
    return ADAPTERS[name](config, rate)
  return ADAPTERS[name](config)


def load(workdir: str, mesh, step: int = -1, aligner_workdir: str | None = None,
         rate: float = -1.0):
  """(adapter, params, step) of the frozen tokenizer in `workdir` (step -1: the latest).

  Raises FileNotFoundError / checkpointing.CheckpointError naming the directory when the
  run has no config.json or no checkpoint.
  """
  config = load_config(workdir)
  adapter = adapter_for(config, rate)
  _, _, tok_params, step = inference.restore_run(workdir, None if step < 0 else step, mesh)
  params = {'tokenizer': tok_params}
  if aligner_workdir:
    params.update(adapter.load_aligner(aligner_workdir, mesh))
  return adapter, params, step

"""What the rest of sbt_jax needs to know about a tokenizer family, in one object.

A family (TiTok, SelfBootTok, TaTok) is a Flax module plus a `TokenizerSpec` next to it
(models/<family>_spec.py), registered in models/registry.py. Trainers, inference,
evaluation and generators ask the spec and never branch on `config.model.name`:

  build(config, aligner_cfg)     the module (aligner_cfg: another 2D aligner size)
  validate(config, fail)         the family's own config checks
  codebooks(config)              every codebook: restarts, usage metrics, eval histograms
  loss_terms(config)             the named terms (losses/terms.py) the tokenizer loss adds
  logged_metrics                 model outputs logged as train metrics
  train_args(rng, n, config)     extra inputs of the training forward pass (TaTok: rates)
  eval_outputs(...)              eval extras: more id sets, per-image metrics, more images
  modes / uses_rate              the stored-ids formats encode offers
  encode_fn / check_ids / decode_fn / ids_metrics_fn   the stored ids, jittable
  global_tokenizer(config, ...)  the adapter generators see (global ids in, images out)

To add a family: its module, a spec subclass, one registry entry.
"""
import abc
import dataclasses

import ml_collections
import numpy as np

from sbt_jax.models import colour


@dataclasses.dataclass(frozen=True)
class Codebook:
  """One codebook of a tokenizer: params[param]['codebook'] of `size` entries; the model's
  aux output holds its ids, the vectors it quantized and its VQ terms under
  {prefix}ids, {prefix}z, {prefix}codebook_loss, {prefix}commit_loss; metrics and the usage
  EMA carry `prefix` ('' global, 'local_', 'patch_'). An FSQ codebook (models/fsq.py) has
  no params and is not restartable."""
  param: str
  size: int
  prefix: str = ''
  token_dim: int = 0  # the dimension of its vectors (FSQ: size must be levels ** token_dim)
  restartable: bool = True  # dead-code restarts may move its entries

  @property
  def ids_key(self) -> str:
    return f'{self.prefix}ids'

  @property
  def z_key(self) -> str:
    return f'{self.prefix}z'

  @property
  def usage_key(self) -> str:
    return f'{self.prefix}codebook_usage'


def check_id_range(ids, lo: int, hi: int, size: int, what: str) -> None:
  """ValueError unless ids[:, lo:hi] lie in [0, size)."""
  part = ids[:, lo:hi]
  if part.size and (part.min() < 0 or part.max() >= size):
    raise ValueError(f'{what} ids must be in [0, {size}); got range '
                     f'[{part.min()}, {part.max()}]')


def book(config, param: str, size: int, token_dim: int, prefix: str = '') -> Codebook:
  """A codebook of model.quantizer's kind (config.model)."""
  return Codebook(param, size, prefix, token_dim, config.model.quantizer != 'fsq')


def num_global_ids(config) -> int:
  """Global ids per stored image: the G learned ones, then the colour ids (if on)."""
  m = config.model
  return m.num_global_tokens + colour.num_ids(m.colour_levels, config.data.channels)


def check_global_ids(config, ids, what: str = 'global') -> None:
  """ValueError unless ids[:, :G] are codebook ids and the colour ids after them are in
  [0, colour_levels)."""
  m = config.model
  g = m.num_global_tokens
  check_id_range(ids, 0, g, m.codebook_size, what)
  check_id_range(ids, g, num_global_ids(config), m.colour_levels, 'colour')


def as_int_ids(ids) -> np.ndarray:
  ids = np.asarray(ids)
  if ids.ndim != 2:
    raise ValueError(f'ids must be a 2-D array [B, tokens]; got shape {ids.shape}')
  if not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(f'ids must be integers; got dtype {ids.dtype}')
  return ids.astype(np.int32)


class TokenizerSpec(abc.ABC):
  """The family-specific answers; defaults are TiTok's (G global ids, one VQ codebook)."""
  name = ''
  # Stored-id formats `encode` offers ('generate': the G global ids, the rest predicted).
  modes = ('compress',)
  # Encode/decode take an information-loss rate r (TaTok's Dynamic Token Filtering).
  uses_rate = False
  # A stage='aligner' run can train another 2D aligner against a frozen tokenizer.
  has_aligner_stage = False
  # Reads model.layout, model.decoder_patch_size and model.vq_l2_norm (TiTok only).
  has_titok_layouts = False
  # Model aux keys logged as train metrics (their mean; no gradient role).
  logged_metrics: tuple[str, ...] = ()
  # (model aux key of another reconstruction, config.loss weight field, metric prefix).
  extra_reconstructions: tuple[tuple[str, str, str], ...] = ()

  @abc.abstractmethod
  def build(self, config: ml_collections.ConfigDict, aligner_cfg=None):
    """The family's Flax module for `config` (aligner_cfg: another 2D aligner size)."""

  def validate(self, config: ml_collections.ConfigDict, fail) -> None:
    """Calls fail(message) for a config this family cannot run."""

  def codebooks(self, config: ml_collections.ConfigDict) -> tuple[Codebook, ...]:
    m = config.model
    return (book(config, 'quantizer', m.codebook_size, m.token_dim),)

  def loss_terms(self, config: ml_collections.ConfigDict) -> tuple[tuple[str, str], ...]:
    """(losses/terms.py name, config.loss weight field) the tokenizer loss adds, in order."""
    del config
    return ()

  def train_args(self, rng, batch_size: int, config: ml_collections.ConfigDict) -> tuple:
    """Extra positional inputs of the training forward pass after the images."""
    del rng, batch_size, config
    return ()

  def eval_outputs(self, model, params, x_BxHxWxC, aux, rng, temperature: float):
    """(id sets {aux key: ids}, per-image metrics {name: [B]}, other reconstructions
    {metric prefix: images}) that eval reports beside the compress-mode reconstruction."""
    del model, params, x_BxHxWxC, rng, temperature
    return {'ids': aux['ids']}, {}, {}

  # --- stored ids ----------------------------------------------------------------------

  def ids_per_image(self, config, mode: str) -> int:
    del mode
    return num_global_ids(config)

  def encode_fn(self, model, mode: str):
    """Pure fn(params, x_BxHxWxC, rate) -> ids [B, W] int32 in `mode`."""
    del mode

    def encode(params, x_BxHxWxC, rate):
      del rate
      return model.apply({'params': params}, x_BxHxWxC, method='encode_ids')
    return encode

  def check_ids(self, config, ids) -> tuple[np.ndarray, str]:
    """(ids as int32, the decode kind for decode_fn); ValueError naming what is wrong."""
    ids = as_int_ids(ids)
    g = num_global_ids(config)
    if ids.shape[1] != g:
      raise ValueError(f'decode expects ids of shape [B, {g}]; got {ids.shape}')
    check_global_ids(config, ids)
    return ids, 'compress'

  def decode_fn(self, model, kind: str):
    """Pure fn(params, ids, rng, temperature, rate) -> images, for a check_ids kind."""
    del kind

    def decode(params, ids, rng, temperature, rate):
      del rng, temperature, rate
      return model.apply({'params': params}, ids, method='decode_ids')
    return decode

  def id_histograms(self, config, ids, mode: str) -> dict:
    """{metric prefix: (flat ids of one codebook, its size)} of stored ids (numpy)."""
    del mode
    m = config.model
    return {'': (ids[:, :m.num_global_tokens].reshape(-1), m.codebook_size)}

  def ids_metrics_fn(self, model, config, mode: str):
    """None, or pure fn(params, ids) -> {name: [B] float} of per-image facts about stored
    ids (evaluation reports their means)."""
    del model, config, mode
    return None

  @abc.abstractmethod
  def global_tokenizer(self, config, rate: float = -1.0, aligner_cfg=None):
    """The adapter a generator trains on: an object with
      vocab_size, num_tokens, image_shape    ids in [0, vocab_size), num_tokens per image
      padded, cache_tag                      ids may hold -1 padding; token-cache identity
      encode_global_ids(params, x) -> ids    pure, jittable
      decode_global_ids(params, ids) -> x    pure, jittable, images in [-1, 1]
    where params = {'tokenizer': ...} (+ {'aligner': ...} of an aligner-stage run)."""

  def default_rate(self, config):
    del config
    return None

"""Restore a trained tokenizer from its workdir and encode, decode or reconstruct images.

  tok = Tokenizer('workdirs/titok_fmnist')
  ids_BxG = tok.encode(images_BxHxWxC)     # images in [-1, 1], or use load_images(files)
  images = tok.decode(ids_BxG)

SelfBootTok has two modes:
  ids = tok.encode(x, mode='compress')    # [B, G + L]: global then local ids
  ids = tok.encode(x, mode='generate')    # [B, G]: global ids only
  tok.decode(ids)                         # G + L columns: compress; G: generate mode,
  tok.decode(ids, temperature=1.0, seed=0)  # local ids sampled (0: argmax, the default)
  Tokenizer(workdir, aligner_workdir=W)   # generate mode with an aligner-stage aligner

TaTok keeps a variable number of patch tokens per image (rate r: allowed information loss):
  ids = tok.encode(x, rate=0.3)           # [B, G + N]: global ids, then the kept patch ids
                                          # in decreasing-entropy order, padded with -1
  tok.decode(ids)                         # any [B, G + M] (M <= N) with -1 padding
  (ids[:, G:] >= 0).sum(1)                # patch tokens kept per image

The workdir holds config.json (written by the trainer) and Orbax checkpoints; the EMA params
are used when the run kept them.
"""

import jax
import numpy as np

from sbt_jax import paths
from sbt_jax import runs
from sbt_jax import sharding
from sbt_jax.data import image_folder
from sbt_jax.data import pipeline
from sbt_jax.models import spec as spec_lib
from sbt_jax.models import titok as titok_lib

# Kept for callers of the old name: a run's config.json (runs.load_config).
load_config = runs.load_config


def load_images(sources, image_size: int, channels: int) -> tuple[np.ndarray, list[str]]:
  """Image files and folders (recursive) -> (float32 [B, S, S, C] in [-1, 1], file names).

  Every file is decoded once (then resized), before anything is returned. One error names
  every bad path at once: FileNotFoundError if all of them are missing paths, else
  image_folder.ImageFilesError (a ValueError) for files that are not readable images
  (empty, truncated, not an image whatever the name) and any missing ones.
  """
  files, missing = [], []
  for p in map(str, sources):
    if paths.isdir(p):
      files += [str(f) for f in image_folder.list_images(p)]
    elif paths.isfile(p):
      files.append(p)
    else:
      missing.append(p)
  if not files and not missing:
    raise FileNotFoundError(f'No images found in {list(map(str, sources))}')
  images, problems = image_folder.decode_images(
      files, lambda image: pipeline.preprocess({'image': image}, image_size, channels)['image'])
  if missing and not problems:
    what = 'files or folders' if len(missing) > 1 else 'file or folder'
    raise FileNotFoundError(f'No such image {what}: {", ".join(map(repr, missing))}')
  image_folder.check_decoded([(m, 'no such file or folder') for m in missing] + problems,
                             len(files) + len(missing))
  return np.stack(images), files


class Tokenizer:
  """A restored tokenizer on the local devices (batches are split over them). Family
  differences (modes, rates, id formats) come from its spec (models/spec.py)."""

  def __init__(self, workdir: str, step: int | None = None, batch_size: int = 64,
               aligner_workdir: str | None = None, aligner_step: int | None = None):
    self.mesh = runs.local_mesh()
    run = runs.restore_tokenizer(workdir, self.mesh, step, aligner_workdir, aligner_step)
    self.config, self.spec, self.model = run.config, run.spec, run.model
    self.params, self.step = run.params, run.step
    self.num_global = spec_lib.num_global_ids(self.config)  # global ids (colour ids included)
    n_dev = len(jax.local_devices())
    self.batch_size = batch_size - batch_size % n_dev or n_dev
    self._jitted = {}

  @property
  def image_shape(self):
    d = self.config.data
    return (d.image_size, d.image_size, d.channels)

  @property
  def modes(self) -> tuple[str, ...]:
    return self.spec.modes

  def ids_per_image(self, mode: str = 'compress') -> int:
    """Ids per image in `mode` (the padded width for variable-length formats)."""
    return self.spec.ids_per_image(self.config, mode)

  def _jit(self, key, make, **kw):
    if key not in self._jitted:
      self._jitted[key] = jax.jit(make(), **kw)
    return self._jitted[key]

  def _batched(self, fn, x, *extra):
    """Runs fn over x in fixed-size batches (the last one padded) and concatenates."""
    x = np.asarray(x)
    out = []
    for i in range(0, len(x), self.batch_size):
      chunk = x[i:i + self.batch_size]
      n = len(chunk)
      if n < self.batch_size:
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch_size - n, 0)])
      args = [a(i) if callable(a) else a for a in extra]
      result = fn(self.params, sharding.global_batch(chunk, self.mesh), *args)
      out.append(jax.tree.map(lambda r: np.asarray(r)[:n], result))
    return jax.tree.map(lambda *parts: np.concatenate(parts), *out)

  def _check_rate(self, rate):
    if rate is not None and not self.spec.uses_rate:
      raise ValueError(f'rate={rate} is a TaTok setting; this tokenizer is '
                       f'{self.config.model.name!r}')
    rate = self.spec.default_rate(self.config) if rate is None else float(rate)
    if rate is not None and not 0.0 <= rate <= 1.0:
      raise ValueError(f'rate={rate}: the information-loss rate must be in [0, 1]')
    return rate

  def encode(self, images_BxHxWxC, mode: str = 'compress', rate: float | None = None
             ) -> np.ndarray:
    """Ids per image: [B, G] (TiTok), [B, G + L] (SelfBootTok compress), [B, G] (generate),
    [B, G + N] (TaTok at rate r, default model.tatok.eval_rate; -1 pads dropped tokens)."""
    images_BxHxWxC = np.asarray(images_BxHxWxC, np.float32)
    if images_BxHxWxC.ndim != 4 or images_BxHxWxC.shape[1:] != self.image_shape:
      raise ValueError(f'encode expects images of shape [B, {", ".join(map(str, self.image_shape))}]'
                       f' in [-1, 1]; got {images_BxHxWxC.shape}. Use load_images() to resize.')
    if mode not in ('compress', 'generate'):
      raise ValueError(f"mode={mode!r}; expected 'compress' or 'generate'")
    if self.config.model.quantizer == 'vae':
      raise ValueError(titok_lib.VAE_NO_IDS)
    if mode not in self.modes:
      raise ValueError(f"mode={mode!r} needs a selfboottok tokenizer; "
                       f'{self.config.model.name!r} has the modes {self.modes}')
    rate = self._check_rate(rate)
    fn = self._jit(('encode', mode), lambda: self.spec.encode_fn(self.model, mode))
    return self._batched(fn, images_BxHxWxC, np.float32(rate or 0.0)).astype(np.int32)

  def decode(self, ids, temperature: float = 0.0, seed: int = 0,
             rate: float | None = None) -> np.ndarray:
    """Images in [-1, 1] from ids. SelfBootTok: G + L columns decode in compress mode,
    G columns in generate mode (local ids from the aligner: argmax when temperature is 0,
    else sampled with this temperature and seed)."""
    if self.config.model.quantizer == 'vae':
      raise ValueError(titok_lib.VAE_NO_IDS)
    ids, kind = self.spec.check_ids(self.config, ids)
    fn = self._jit(('decode', kind), lambda: self.spec.decode_fn(self.model, kind),
                   static_argnums=3)
    key = jax.random.key(seed)
    out = self._batched(fn, ids, lambda i: jax.random.fold_in(key, i), float(temperature),
                        rate)
    return np.clip(out, -1.0, 1.0)

  def encode_latents(self, images_BxHxWxC) -> np.ndarray:
    """A VAE tokenizer's (model.quantizer='vae') latents [B, G, T]: the posterior means."""
    self._check_vae('encode_latents')
    images_BxHxWxC = np.asarray(images_BxHxWxC, np.float32)
    if images_BxHxWxC.ndim != 4 or images_BxHxWxC.shape[1:] != self.image_shape:
      raise ValueError(f'encode_latents expects images of shape [B, '
                       f'{", ".join(map(str, self.image_shape))}] in [-1, 1]; got '
                       f'{images_BxHxWxC.shape}')
    fn = self._jit('encode_latents', lambda: lambda params, x: self.model.apply(
        {'params': params}, x, method='encode')[0])
    return self._batched(fn, images_BxHxWxC)

  def decode_latents(self, latents_BxGxT) -> np.ndarray:
    """Images in [-1, 1] from a VAE tokenizer's latents [B, G, T]."""
    self._check_vae('decode_latents')
    m = self.config.model
    latents_BxGxT = np.asarray(latents_BxGxT, np.float32)
    if latents_BxGxT.ndim != 3 or latents_BxGxT.shape[1:] != (m.num_global_tokens,
                                                              m.token_dim):
      raise ValueError(f'decode_latents expects latents of shape [B, {m.num_global_tokens}, '
                       f'{m.token_dim}]; got {latents_BxGxT.shape}')
    fn = self._jit('decode_latents', lambda: lambda params, z: self.model.apply(
        {'params': params}, z, method='decode'))
    return np.clip(self._batched(fn, latents_BxGxT), -1.0, 1.0)

  def _check_vae(self, what):
    if self.config.model.quantizer != 'vae':
      raise ValueError(f"{what} is for VAE tokenizers (model.quantizer='vae'); this one has "
                       'ids: use encode / decode')

  def ids_metrics(self, ids, mode: str = 'compress') -> dict:
    """Per-image facts about stored ids (SelfBootTok compress: local_ce_bits, the aligner's
    bits per local token; TaTok: tokens_per_image); {} when the family has none."""
    make = self.spec.ids_metrics_fn(self.model, self.config, mode)
    if make is None:
      return {}
    return self._batched(self._jit(('ids_metrics', mode), lambda: make), np.asarray(ids))

  def local_nll_bits(self, ids_Bx_GL) -> np.ndarray:
    """Per image: the aligner's mean -log2 p(local id | global ids) over the L slots
    (SelfBootTok compress-mode ids)."""
    return self.ids_metrics(ids_Bx_GL, 'compress')['local_ce_bits']

  def reconstruct(self, images_BxHxWxC, mode: str = 'compress', temperature: float = 0.0,
                  seed: int = 0, rate: float | None = None) -> np.ndarray:
    return self.decode(self.encode(images_BxHxWxC, mode, rate), temperature, seed)

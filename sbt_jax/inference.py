"""Restore a trained tokenizer from its workdir and encode, decode or reconstruct images.

  tok = Tokenizer('workdirs/titok_fmnist')
  ids_BxG = tok.encode(images_BxHxWxC)     # images in [-1, 1], or use load_images(paths)
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
import json
import os
import pathlib

import jax
import ml_collections
import numpy as np

from sbt_jax import checkpointing
from sbt_jax import sharding
from sbt_jax.data import image_folder
from sbt_jax.data import pipeline


def _fill_defaults(defaults: dict, loaded: dict) -> dict:
  """`loaded` with every field it lacks taken from `defaults` (recursively)."""
  out = dict(defaults)
  for k, v in loaded.items():
    out[k] = _fill_defaults(defaults[k], v) if (
        isinstance(v, dict) and isinstance(defaults.get(k), dict)) else v
  return out


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The run's config.json; fields added to sbt_jax after the run get their defaults (so
  older workdirs keep loading)."""
  from sbt_jax import config_defaults  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, 'config.json')
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path} not found: {workdir!r} is not the workdir of an sbt_jax '
                            'training run.')
  with open(path) as f:
    try:
      loaded = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{path} is not valid JSON ({e}).') from e
  if not isinstance(loaded, dict):
    raise ValueError(f'{path} does not hold a config object.')
  return ml_collections.ConfigDict(
      _fill_defaults(config_defaults.base_config().to_dict(), loaded))


def load_images(paths, image_size: int, channels: int) -> tuple[np.ndarray, list[str]]:
  """Image files and folders (recursive) -> (float32 [B, S, S, C] in [-1, 1], file names).

  Every file is decoded once (then resized), before anything is returned. One error names
  every bad path at once: FileNotFoundError if all of them are missing paths, else
  image_folder.ImageFilesError (a ValueError) for files that are not readable images
  (empty, truncated, not an image whatever the name) and any missing ones.
  """
  files, missing = [], []
  for p in paths:
    p = pathlib.Path(p)
    if p.is_dir():
      files += [str(f) for f in image_folder.list_images(p)]
    elif p.is_file():
      files.append(str(p))
    else:
      missing.append(str(p))
  if not files and not missing:
    raise FileNotFoundError(f'No images found in {list(map(str, paths))}')
  images, problems = image_folder.decode_images(
      files, lambda image: pipeline.preprocess({'image': image}, image_size, channels)['image'])
  if missing and not problems:
    what = 'files or folders' if len(missing) > 1 else 'file or folder'
    raise FileNotFoundError(f'No such image {what}: {", ".join(map(repr, missing))}')
  image_folder.check_decoded([(m, 'no such file or folder') for m in missing] + problems,
                             len(files) + len(missing))
  return np.stack(images), files


def restore_run(workdir, step, mesh):
  """(config, task, params, step) of the run in workdir (any stage)."""
  from sbt_jax import trainers  # pylint: disable=g-import-not-at-top
  config = load_config(workdir)
  task = trainers.get_task(config.stage)(config, mesh)
  params, step = checkpointing.restore_task_params(task, workdir, mesh, config.mesh.rules,
                                                   step)
  return config, task, params, step


class Tokenizer:
  """A restored tokenizer on the local devices (batches are split over them)."""

  def __init__(self, workdir: str, step: int | None = None, batch_size: int = 64,
               aligner_workdir: str | None = None, aligner_step: int | None = None):
    self.mesh = sharding.make_mesh(
        ml_collections.ConfigDict({'data': -1, 'fsdp': 1, 'tensor': 1}), jax.local_devices())
    self.config, task, self.params, self.step = restore_run(workdir, step, self.mesh)
    if self.config.stage != 'tokenizer':
      raise ValueError(f'{workdir!r} is a {self.config.stage!r} run; pass the tokenizer\'s '
                       'workdir (and an aligner run as aligner_workdir).')
    self.model = task.model
    if aligner_workdir:
      if self.config.model.name != 'selfboottok':
        raise ValueError('aligner_workdir needs a selfboottok tokenizer; '
                         f'{workdir!r} is {self.config.model.name!r}')
      al_config, al_task, al_params, _ = restore_run(aligner_workdir, aligner_step,
                                                               self.mesh)
      if al_config.stage != 'aligner':
        raise ValueError(f'aligner_workdir={aligner_workdir!r} is a {al_config.stage!r} '
                         "run, not stage='aligner'")
      self.model = al_task.model
      self.params = {**self.params, 'aligner': al_params}
    self.is_selfboottok = self.config.model.name == 'selfboottok'
    self.is_tatok = self.config.model.name == 'tatok'
    self.num_global = self.config.model.num_latent_tokens
    self.num_local = self.config.model.num_local_tokens if self.is_selfboottok else 0
    self.batch_size = batch_size - batch_size % len(jax.local_devices()) or len(
        jax.local_devices())
    m = self.model
    if self.is_selfboottok:
      self._encode = jax.jit(lambda p, x: jax.numpy.concatenate(
          m.apply({'params': p}, x, method='encode'), axis=1))
      self._encode_global = jax.jit(lambda p, x: m.apply({'params': p}, x,
                                                         method='encode_global'))
      self._decode_generate = jax.jit(
          lambda p, ids, key, t: m.apply({'params': p}, ids, key, t,
                                         method='decode_generate')[0],
          static_argnums=3)
      self._local_logits = jax.jit(lambda p, ids: m.apply({'params': p}, ids,
                                                          method='local_logits'))
    elif self.is_tatok:
      self._encode = jax.jit(lambda p, x, rate: m.apply({'params': p}, x, rate,
                                                        method='encode_ids'))
    else:
      self._encode = jax.jit(lambda p, x: m.apply({'params': p}, x, method='encode')[1]['ids'])
    self._decode = jax.jit(lambda p, ids: m.apply({'params': p}, ids, method='decode_ids'))

  @property
  def image_shape(self):
    d = self.config.data
    return (d.image_size, d.image_size, d.channels)

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
      out.append(np.asarray(fn(self.params, sharding.global_batch(chunk, self.mesh),
                               *args))[:n])
    return np.concatenate(out)

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
    if rate is not None and not self.is_tatok:
      raise ValueError(f'rate={rate} is a TaTok setting; this tokenizer is '
                       f'{self.config.model.name!r}')
    if self.is_tatok:
      if mode != 'compress':
        raise ValueError(f"mode={mode!r}: TaTok has one mode; choose its rate instead")
      rate = self.config.model.tatok.eval_rate if rate is None else float(rate)
      if not 0.0 <= rate <= 1.0:
        raise ValueError(f'rate={rate}: the information-loss rate must be in [0, 1]')
      return self._batched(self._encode, images_BxHxWxC, np.float32(rate)).astype(np.int32)
    if mode == 'generate':
      if not self.is_selfboottok:
        raise ValueError("mode='generate' needs a selfboottok tokenizer (TiTok has one mode)")
      return self._batched(self._encode_global, images_BxHxWxC).astype(np.int32)
    return self._batched(self._encode, images_BxHxWxC).astype(np.int32)

  def _check_ids(self, ids, lo, hi, k, what):
    if ids.size and (ids[:, lo:hi].min() < 0 or ids[:, lo:hi].max() >= k):
      raise ValueError(f'{what} ids must be in [0, {k}); got range '
                       f'[{ids[:, lo:hi].min()}, {ids[:, lo:hi].max()}]')

  def decode(self, ids, temperature: float = 0.0, seed: int = 0) -> np.ndarray:
    """Images in [-1, 1] from ids. SelfBootTok: G + L columns decode in compress mode,
    G columns in generate mode (local ids from the aligner: argmax when temperature is 0,
    else sampled with this temperature and seed)."""
    ids = np.asarray(ids)
    if self.is_tatok:
      return np.clip(self._batched(self._decode, self._check_tatok_ids(ids)), -1.0, 1.0)
    g, l = self.num_global, self.num_local
    widths = (g, g + l) if self.is_selfboottok else (g,)
    if ids.ndim != 2 or ids.shape[1] not in widths:
      raise ValueError(f'decode expects ids of shape [B, {" or ".join(map(str, widths))}]; '
                       f'got {ids.shape}')
    if not np.issubdtype(ids.dtype, np.integer):
      raise ValueError(f'ids must be integers; got dtype {ids.dtype}')
    ids = ids.astype(np.int32)
    self._check_ids(ids, 0, g, self.config.model.codebook_size, 'global')
    if ids.shape[1] == g + l and l:
      self._check_ids(ids, g, g + l, self.config.model.local_codebook_size, 'local')
    if self.is_selfboottok and ids.shape[1] == g:
      key = jax.random.key(seed)
      out = self._batched(self._decode_generate, ids,
                          lambda i: jax.random.fold_in(key, i), float(temperature))
    else:
      out = self._batched(self._decode, ids)
    return np.clip(out, -1.0, 1.0)

  def _check_tatok_ids(self, ids):
    """TaTok ids [B, G + M]: global ids, then kept patch ids (a prefix) padded with -1."""
    g, n = self.num_global, self.config.model.tatok.patch_codebook_size
    max_width = g + (self.config.data.image_size // self.config.model.patch_size) ** 2
    if ids.ndim != 2 or not g <= ids.shape[1] <= max_width:
      raise ValueError(f'TaTok decode expects ids of shape [B, G + M] with G={g} and '
                       f'M <= {max_width - g} patch tokens; got {ids.shape}')
    if not np.issubdtype(ids.dtype, np.integer):
      raise ValueError(f'ids must be integers; got dtype {ids.dtype}')
    ids = ids.astype(np.int32)
    self._check_ids(ids, 0, g, self.config.model.codebook_size, 'global')
    patch = ids[:, g:]
    if patch.size and patch.max() >= n:
      raise ValueError(f'patch ids must be in [0, {n}) (or -1 for padding); got max '
                       f'{patch.max()}')
    valid = patch >= 0
    if np.any(valid[:, 1:] & ~valid[:, :-1]) or np.any(patch < -1):
      raise ValueError('patch ids must be the kept tokens first, then -1 padding only')
    return ids

  def local_nll_bits(self, ids_Bx_GL) -> np.ndarray:
    """Per image: the aligner's mean -log2 p(local id | global ids) over the L slots, an
    estimate of the bits per local token that the global ids do not already determine."""
    ids = np.asarray(ids_Bx_GL, np.int32)
    g = self.num_global
    logits = self._batched(self._local_logits, ids[:, :g])
    logp = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    nll = -np.take_along_axis(logp, ids[:, g:, None], -1)[..., 0]
    return nll.mean(axis=1) / np.log(2.0)

  def reconstruct(self, images_BxHxWxC, mode: str = 'compress', temperature: float = 0.0,
                  seed: int = 0, rate: float | None = None) -> np.ndarray:
    return self.decode(self.encode(images_BxHxWxC, mode, rate), temperature, seed)

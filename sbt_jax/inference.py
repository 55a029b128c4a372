"""Restore a trained tokenizer from its workdir and encode, decode or reconstruct images.

  tok = Tokenizer('workdirs/titok_fmnist')
  ids_BxG = tok.encode(images_BxHxWxC)     # images in [-1, 1], or use load_images(paths)
  images = tok.decode(ids_BxG)

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


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, 'config.json')
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path} not found: {workdir!r} is not the workdir of an sbt_jax '
                            'training run.')
  with open(path) as f:
    try:
      return ml_collections.ConfigDict(json.load(f))
    except json.JSONDecodeError as e:
      raise ValueError(f'{path} is not valid JSON ({e}).') from e


def load_images(paths, image_size: int, channels: int) -> tuple[np.ndarray, list[str]]:
  """Image files and folders (recursive) -> (float32 [B, S, S, C] in [-1, 1], file names)."""
  files = []
  for p in paths:
    p = pathlib.Path(p)
    if p.is_dir():
      files += [str(f) for f in image_folder.list_images(p)]
    elif p.is_file():
      files.append(str(p))
    else:
      raise FileNotFoundError(f'No such image file or folder: {str(p)!r}')
  if not files:
    raise FileNotFoundError(f'No images found in {list(map(str, paths))}')
  images = [pipeline.preprocess({'image': image_folder.read_image(f)}, image_size,
                                 channels)['image'] for f in files]
  return np.stack(images), files


class Tokenizer:
  """A restored tokenizer on the local devices (batches are split over them)."""

  def __init__(self, workdir: str, step: int | None = None, batch_size: int = 64):
    from sbt_jax import trainers  # pylint: disable=g-import-not-at-top
    self.config = load_config(workdir)
    self.mesh = sharding.make_mesh(
        ml_collections.ConfigDict({'data': -1, 'fsdp': 1, 'tensor': 1}), jax.local_devices())
    task = trainers.get_task(self.config.stage)(self.config, self.mesh)
    self.model = task.model
    rng = jax.random.key(0)
    state_sh = sharding.state_shardings(jax.eval_shape(task.boxed_state, rng), self.mesh,
                                        self.config.mesh.rules)
    abstract = checkpointing.abstract_like(jax.eval_shape(task.init_state, rng), state_sh)
    self.params, self.step = checkpointing.restore_params(workdir, abstract, step)
    self.batch_size = batch_size - batch_size % len(jax.local_devices()) or len(
        jax.local_devices())
    self._encode = jax.jit(lambda p, x: self.model.apply({'params': p}, x,
                                                         method='encode')[1]['ids'])
    self._decode = jax.jit(lambda p, ids: self.model.apply({'params': p}, ids,
                                                           method='decode_ids'))

  @property
  def image_shape(self):
    d = self.config.data
    return (d.image_size, d.image_size, d.channels)

  def _batched(self, fn, x):
    """Runs fn over x in fixed-size batches (the last one padded) and concatenates."""
    x = np.asarray(x)
    out = []
    for i in range(0, len(x), self.batch_size):
      chunk = x[i:i + self.batch_size]
      n = len(chunk)
      if n < self.batch_size:
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch_size - n, 0)])
      out.append(np.asarray(fn(self.params, sharding.global_batch(chunk, self.mesh)))[:n])
    return np.concatenate(out)

  def encode(self, images_BxHxWxC) -> np.ndarray:
    images_BxHxWxC = np.asarray(images_BxHxWxC, np.float32)
    if images_BxHxWxC.ndim != 4 or images_BxHxWxC.shape[1:] != self.image_shape:
      raise ValueError(f'encode expects images of shape [B, {", ".join(map(str, self.image_shape))}]'
                       f' in [-1, 1]; got {images_BxHxWxC.shape}. Use load_images() to resize.')
    return self._batched(self._encode, images_BxHxWxC).astype(np.int32)

  def decode(self, ids_BxG) -> np.ndarray:
    ids_BxG = np.asarray(ids_BxG)
    g, k = self.config.model.num_latent_tokens, self.config.model.codebook_size
    if ids_BxG.ndim != 2 or ids_BxG.shape[1] != g:
      raise ValueError(f'decode expects ids of shape [B, {g}]; got {ids_BxG.shape}')
    if not np.issubdtype(ids_BxG.dtype, np.integer) or ids_BxG.min() < 0 or ids_BxG.max() >= k:
      raise ValueError(f'ids must be integers in [0, {k}); got dtype {ids_BxG.dtype}, '
                       f'range [{ids_BxG.min()}, {ids_BxG.max()}]')
    return np.clip(self._batched(self._decode, ids_BxG.astype(np.int32)), -1.0, 1.0)

  def reconstruct(self, images_BxHxWxC) -> np.ndarray:
    return self.decode(self.encode(images_BxHxWxC))

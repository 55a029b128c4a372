"""Global ids of a data split, encoded once by a frozen tokenizer, served like images are.

`load_or_build` writes <cache_dir>/<dataset>_<split>_<size>px_tok<step>.npz (ids [N, G]
int32, labels [N] int32 and the tokenizer it came from) the first time and reads it after;
a cache written by another tokenizer is refused. Loaders yield per-host dicts of numpy
arrays: `ids` int32 [B, G], `label` int32 [B] (eval batches add `mask` float32 [B]).
"""
import grain
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from sbt_jax import paths
from sbt_jax import sharding
from sbt_jax.data import pipeline


def cache_path(cache_dir: str, data_cfg: ml_collections.ConfigDict, split: str,
               tokenizer_step: int) -> str:
  name = data_cfg.name if data_cfg.name != 'folder' else 'folder'
  safe_split = split.replace('/', '_').replace('[', '_').replace(']', '').replace(':', '-')
  return paths.join(cache_dir, f'{name}_{safe_split}_{data_cfg.image_size}px_'
                                 f'tok{tokenizer_step}.npz')


def _encode_split(data_cfg, split, encode_fn, mesh):
  """(ids [N, G], labels [N]) of every example of `split`, identical on every host."""
  cfg = data_cfg.copy_and_resolve_references()
  cfg.eval_split = split
  loader = pipeline.make_eval_loader(cfg, num_images=-1, process_index=jax.process_index(),
                                     process_count=jax.process_count())
  ids, labels = [], []
  for local_batch in loader:
    batch = sharding.global_batch(local_batch, mesh)
    ids_BxG = encode_fn(batch['image'])
    ids_BxG, label_B, mask_B = (np.asarray(multihost_utils.process_allgather(x, tiled=True))
                                for x in (ids_BxG, batch['label'], batch['mask']))
    keep = mask_B > 0
    ids.append(ids_BxG[keep].astype(np.int32))
    labels.append(label_B[keep].astype(np.int32))
  return np.concatenate(ids), np.concatenate(labels)


def load_or_build(path: str, data_cfg, split: str, encode_fn, mesh, *, tokenizer: str):
  """({'ids', 'label'}, built) for `split`: read from `path`, or encoded and written once.

  `encode_fn(images)` maps a global image batch to ids; `tokenizer` names the tokenizer
  (workdir and step) and is checked against the one a cache was written with.
  """
  if paths.exists(path):
    data = paths.load_npz(path)
    if str(data['tokenizer']) != tokenizer:
      raise ValueError(f'Token cache {path} was written by tokenizer {data["tokenizer"]}, '
                       f'not {tokenizer}. Delete it or set generator.token_cache_dir.')
    return {'ids': data['ids'], 'label': data['label']}, False
  ids, labels = _encode_split(data_cfg, split, encode_fn, mesh)
  if jax.process_index() == 0:
    paths.save_npz(path, ids=ids, label=labels, tokenizer=np.array(tokenizer))
  multihost_utils.sync_global_devices(f'token_cache {path}')
  return {'ids': ids, 'label': labels}, True


class IdSource:
  """Random access to cached (ids, label) pairs; repr names the cache for grain checkpoints."""

  def __init__(self, arrays: dict, name: str):
    self._ids, self._labels, self._name = arrays['ids'], arrays['label'], name

  def __len__(self) -> int:
    return len(self._ids)

  def __getitem__(self, index: int) -> dict:
    return {'ids': self._ids[index], 'label': self._labels[index]}

  def __repr__(self) -> str:
    return f'IdSource({self._name!r}, n={len(self._ids)})'


def make_train_loader(arrays: dict, name: str, *, global_batch_size: int, seed: int,
                      process_index: int = 0, process_count: int = 1) -> grain.DataLoader:
  """Infinite seeded shuffle of this host's slice of the cached ids (like the image loader)."""
  if global_batch_size % process_count:
    raise ValueError(f'data.global_batch_size={global_batch_size} is not divisible by the '
                     f'number of processes ({process_count}).')
  source = IdSource(arrays, name)
  shard = grain.sharding.ShardOptions(process_index, process_count, drop_remainder=True)
  sampler = grain.samplers.IndexSampler(num_records=len(source), shard_options=shard,
                                        shuffle=True, num_epochs=None, seed=int(seed))
  return grain.DataLoader(
      data_source=source, sampler=sampler,
      operations=[grain.transforms.Batch(global_batch_size // process_count,
                                         drop_remainder=True)],
      worker_count=0, shard_options=shard)


def eval_batches(arrays: dict, *, global_batch_size: int, num_examples: int = -1,
                 process_index: int = 0, process_count: int = 1):
  """One ordered pass over the first num_examples (-1: all), padded, with `mask`.

  Host h gets rows [k G + h B, k G + (h + 1) B) of global batch k (B = G / process_count).
  """
  n = len(arrays['ids']) if num_examples < 0 else min(num_examples, len(arrays['ids']))
  per_host = global_batch_size // process_count
  for start in range(0, n, global_batch_size):
    idx = start + process_index * per_host + np.arange(per_host)
    real = idx < n
    idx = np.where(real, idx, 0)
    yield {'ids': arrays['ids'][idx], 'label': arrays['label'][idx],
           'mask': real.astype(np.float32)}

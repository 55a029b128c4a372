"""Sources, preprocessing and grain loaders for training and evaluation.

Every loader yields dicts of numpy arrays for ONE host: `image` float32 [B, H, W, C] in
[-1, 1], `label` int32 [B] (eval adds `mask` float32 [B]). Preprocessing runs inside the
source wrapper, so grain's read threads (data.read_threads) decode and resize in parallel;
data.random_crop_flip's crop (a slice of the resized image) and flip come after, as a
grain RandomMap seeded by the record's position in the shuffled stream.
"""
import grain
import ml_collections
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from sbt_jax.data import fashion_mnist_deb  # pylint: disable=unused-import  (registers it)
from sbt_jax.data import image_folder
from sbt_jax.data import photo_tiles_deb  # pylint: disable=unused-import  (registers it)

# Orbax integration: grain's handler stores one JSON state file per process.
#   ocp.CheckpointManager(dir, item_names=('data_iter', ...),
#                         item_handlers={'data_iter': ITER_HANDLER, ...})
#   mngr.save(step, args=ocp.args.Composite(data_iter=iter_save_args(it), ...))
#   mngr.restore(step, args=ocp.args.Composite(data_iter=iter_restore_args(it), ...))
ITER_HANDLER = grain.checkpoint.CheckpointHandler()


def iter_save_args(it: grain.DataLoaderIterator) -> grain.checkpoint.CheckpointSave:
  """Orbax args that save `it`'s position (taken synchronously, at the save call)."""
  return grain.checkpoint.CheckpointSave(it)


def iter_restore_args(it: grain.DataLoaderIterator) -> grain.checkpoint.CheckpointRestore:
  """Orbax args that restore a saved position into `it` (an iterator of the same loader)."""
  return grain.checkpoint.CheckpointRestore(it)


def _prepare_hint(name: str) -> str:
  cmd = f'python -m sbt_jax.data.prepare --dataset {name} --data_dir DIR'
  if name == fashion_mnist_deb.FashionMnistDeb.name:
    return f'Prepare it with `{cmd}` (reads Debian\'s dataset-fashion-mnist, no download).'
  if name == photo_tiles_deb.PhotoTilesDeb.name:
    return (f'Prepare it with `bash launch/setup.sh --photos` or `{cmd}` (reads the photographs '
            f'of Debian\'s {", ".join(photo_tiles_deb.PACKAGES)}, no download).')
  return (f'Prepare it in the array_record format, e.g. `{cmd}` (TFDS may need its manual '
          'download files first).')


def make_source(data_cfg: ml_collections.ConfigDict, split: str):
  """Random-access source (len, [i] -> {'image': HxWxC uint8, 'label': int}) for `split`.

  name='folder' reads the folder of `split` under data.folder (image_folder: train/ and
  val/ or test/ subfolders, labels from class folders); any other name is a TFDS dataset
  already prepared as ArrayRecord under data.data_dir. Never downloads.
  """
  if data_cfg.name == 'folder':
    return image_folder.split_source(data_cfg, split)
  name, data_dir = data_cfg.name, data_cfg.data_dir or None
  where = f'data_dir={data_dir or "<TFDS default>"}'
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise ValueError(f'TFDS dataset {name!r} (split {split!r}) is neither registered nor '
                     f'prepared under {where}. {_prepare_hint(name)}') from None
  if not builder.is_prepared():
    raise FileNotFoundError(
        f'TFDS dataset {name!r} (split {split!r}) is not prepared under '
        f'data_dir={builder.data_dir_root} (expected {builder.data_dir}). '
        f'{_prepare_hint(name)}')
  try:
    return builder.as_data_source(split=split)
  except ValueError as e:  # Unknown split or bad slice.
    raise ValueError(f'TFDS dataset {name!r} under {where} has no split {split!r} '
                     f'(available: {sorted(builder.info.splits)}): {e}') from e
  except NotImplementedError as e:  # Prepared as TFRecord: no random access.
    raise ValueError(f'TFDS dataset {name!r} (split {split!r}) under {where} is stored as '
                     f'{builder.info.file_format}, not array_record. {_prepare_hint(name)}'
                     ) from e


def num_examples(data_cfg: ml_collections.ConfigDict, split: str) -> int:
  """Number of examples in `split` (the whole dataset, before host sharding)."""
  return len(make_source(data_cfg, split))


def resize_shorter_side(image_HxWxC: np.ndarray, image_size: int, channels: int
                        ) -> np.ndarray:
  """uint8 HxWxC (or HxW) -> uint8 H'xW'xchannels with min(H', W') = image_size.

  PIL bicubic, antialiased when shrinking; 1 channel is ITU-R 601 luminance, 3 is RGB
  (gray is repeated).
  """
  image_HxWxC = np.asarray(image_HxWxC)
  if image_HxWxC.ndim == 2:
    image_HxWxC = image_HxWxC[:, :, None]
  height, width, in_channels = image_HxWxC.shape
  if min(height, width) == image_size and in_channels == channels:
    return image_HxWxC
  pil = Image.fromarray(image_HxWxC[:, :, 0] if in_channels == 1 else image_HxWxC)
  pil = pil.convert('L' if channels == 1 else 'RGB')
  if min(height, width) != image_size:
    scale = image_size / min(height, width)
    size = (max(image_size, round(width * scale)), max(image_size, round(height * scale)))
    pil = pil.resize(size, Image.Resampling.BICUBIC)
  return np.asarray(pil).reshape(pil.height, pil.width, channels)


def _unit_range(image_SxSxC: np.ndarray) -> np.ndarray:
  return image_SxSxC.astype(np.float32) / 127.5 - 1.0


def preprocess(example: dict, image_size: int, channels: int) -> dict:
  """Example -> {'image': float32 [image_size, image_size, channels] in [-1, 1], 'label'}.

  Resizes the shorter side to image_size (`resize_shorter_side`) and center-crops.
  """
  image_HxWxC = resize_shorter_side(example['image'], image_size, channels)
  top = (image_HxWxC.shape[0] - image_size) // 2
  left = (image_HxWxC.shape[1] - image_size) // 2
  image_SxSxC = image_HxWxC[top:top + image_size, left:left + image_size]
  return {'image': _unit_range(image_SxSxC), 'label': np.int32(example.get('label', 0))}


class _PreprocessedSource:
  """`source` with `preprocess` applied on read (so it runs in grain's read threads); with
  random_crop, only resized (uint8, shorter side image_size) for _RandomCropFlip."""

  def __init__(self, source, image_size: int, channels: int, random_crop: bool = False):
    self._source, self._image_size, self._channels = source, image_size, channels
    self._random_crop = random_crop

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict:
    example = self._source[index]
    if self._random_crop:
      return {'image': resize_shorter_side(example['image'], self._image_size, self._channels),
              'label': np.int32(example.get('label', 0))}
    return preprocess(example, self._image_size, self._channels)

  def __repr__(self) -> str:
    # grain saves repr(source) in iterator checkpoints and checks it on restore.
    crop = ', random_crop=True' if self._random_crop else ''
    return (f'Preprocessed({self._source!r}, image_size={self._image_size}, '
            f'channels={self._channels}{crop})')


class _RandomCropFlip(grain.transforms.RandomMap):
  """The 1d-tokenizer reference's training augmentation (Resize of the shorter side, then
  RandomCrop and RandomHorizontalFlip): a random image_size square of the resized image,
  mirrored with probability 1/2, scaled to [-1, 1].

  grain's rng is a function of (seed, position in the shuffled stream): crops differ every
  epoch and a restored iterator repeats them exactly.
  """

  def __init__(self, image_size: int, seed: int):
    self._image_size, self._seed = image_size, seed

  def random_map(self, example: dict, rng: np.random.Generator) -> dict:
    # grain seeds Philox(seed + position): mixing the seed in again keeps seeds s and s + 1
    # from sharing one stream shifted by a record.
    rng = np.random.default_rng([self._seed, int(rng.integers(2**63))])
    image_HxWxC, size = example['image'], self._image_size
    top = rng.integers(image_HxWxC.shape[0] - size + 1)
    left = rng.integers(image_HxWxC.shape[1] - size + 1)
    image_SxSxC = image_HxWxC[top:top + size, left:left + size]
    if rng.random() < 0.5:
      image_SxSxC = image_SxSxC[:, ::-1]
    return {'image': _unit_range(image_SxSxC), 'label': example['label']}


def _per_host(batch_size: int, process_count: int, field: str) -> int:
  if batch_size % process_count:
    raise ValueError(f'data.{field}={batch_size} is not divisible by the number of '
                     f'processes ({process_count}).')
  return batch_size // process_count


def _read_options(data_cfg) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=data_cfg.read_threads)


class _HostSliceSampler:
  """Host h's records of a global record order: its slice of every global batch.

  Local record i is global record k * G + h * B + j, with (k, j) = divmod(i, B), B the
  per-host and G the global batch. Stacking the hosts' k-th batches in process order gives
  global records [k * G, (k + 1) * G): the global batches do not depend on process_count.
  """

  def __init__(self, sampler, batch_size: int, process_index: int, process_count: int):
    self._sampler, self._batch_size = sampler, batch_size
    self._process_index, self._process_count = process_index, process_count

  def __len__(self) -> int:
    return len(self._sampler) // self._process_count

  def __getitem__(self, index: int):
    k, j = divmod(index, self._batch_size)
    global_index = (k * self._process_count + self._process_index) * self._batch_size + j
    return self._sampler[global_index]

  def __repr__(self) -> str:
    # grain checks repr(sampler) when it restores an iterator checkpoint.
    return (f'HostSlice({self._sampler!r}, batch_size={self._batch_size}, '
            f'process_index={self._process_index}, process_count={self._process_count})')


def make_train_loader(data_cfg: ml_collections.ConfigDict, *, seed: int,
                      process_index: int = 0, process_count: int = 1) -> grain.DataLoader:
  """Infinite, seeded shuffle of the split, in per-host batches.

  One global order (a function of `seed` only, reshuffled every epoch) is cut into global
  batches; host h reads and decodes only its h-th slice of each (`_HostSliceSampler`), so
  a run on P hosts trains on the same global batches as a run on one host (crops and flips
  included). `iter(loader)` supports get_state / set_state and the orbax args above.
  """
  batch_size = _per_host(data_cfg.global_batch_size, process_count, 'global_batch_size')
  source = make_source(data_cfg, data_cfg.train_split)
  no_shard = grain.sharding.NoSharding()
  sampler = grain.samplers.IndexSampler(
      num_records=len(source), shard_options=no_shard, shuffle=True, num_epochs=None,
      seed=int(seed))
  if process_count > 1:  # With one process the slice is the identity; keep the plain
    # sampler so iterator checkpoints of single-process runs stay valid.
    sampler = _HostSliceSampler(sampler, batch_size, process_index, process_count)
  crop = data_cfg.random_crop_flip
  augment = [_RandomCropFlip(data_cfg.image_size, int(seed))] if crop else []
  return grain.DataLoader(
      data_source=_PreprocessedSource(source, data_cfg.image_size, data_cfg.channels, crop),
      sampler=sampler,
      operations=augment + [grain.transforms.Batch(batch_size, drop_remainder=True)],
      worker_count=data_cfg.worker_count,
      shard_options=no_shard,
      read_options=_read_options(data_cfg))


class _PaddedEvalSource:
  """This host's share of the first `num_real` examples, padded to whole global batches.

  Element i of host h is global example k * G + h * B + j, with (k, j) = divmod(i, B),
  B the per-host and G the global batch; stacking the hosts' k-th batches in process
  order gives examples [k * G, (k + 1) * G). Positions >= num_real are zeros, mask 0.
  """

  def __init__(self, source, num_real: int, batch_size: int, process_index: int,
               process_count: int, image_shape: tuple[int, int, int]):
    self._source, self._num_real, self._image_shape = source, num_real, image_shape
    self._batch_size, self._process_index = batch_size, process_index
    self._global_batch = batch_size * process_count
    self._num_batches = -(-num_real // self._global_batch)

  def __len__(self) -> int:
    return self._num_batches * self._batch_size

  def __getitem__(self, index: int) -> dict:
    k, j = divmod(index, self._batch_size)
    position = k * self._global_batch + self._process_index * self._batch_size + j
    if position < self._num_real:
      return dict(self._source[position], mask=np.float32(1))
    return {'image': np.zeros(self._image_shape, np.float32), 'label': np.int32(0),
            'mask': np.float32(0)}

  def __repr__(self) -> str:
    return (f'PaddedEval({self._source!r}, num_real={self._num_real}, '
            f'batch_size={self._batch_size}, process_index={self._process_index}, '
            f'global_batch={self._global_batch})')


def make_eval_loader(data_cfg: ml_collections.ConfigDict, *, num_images: int = -1,
                     process_index: int = 0, process_count: int = 1) -> grain.DataLoader:
  """One ordered pass over the first num_images (-1: all) of the eval split.

  Batches are per host, eval_batch_size // process_count, all of the same shape: the
  last ones are padded and carry `mask` float32 [B] (1 real, 0 padding). Every host
  yields the same number of batches. Each `iter(loader)` starts a new pass.
  """
  batch_size = _per_host(data_cfg.eval_batch_size, process_count, 'eval_batch_size')
  source = _PreprocessedSource(make_source(data_cfg, data_cfg.eval_split),
                               data_cfg.image_size, data_cfg.channels)
  if num_images == 0:
    raise ValueError('num_images=0: nothing to evaluate (use -1 for the whole split).')
  num_real = len(source) if num_images < 0 else min(num_images, len(source))
  image_shape = (data_cfg.image_size, data_cfg.image_size, data_cfg.channels)
  padded = _PaddedEvalSource(source, num_real, batch_size, process_index, process_count,
                             image_shape)
  no_shard = grain.sharding.NoSharding()  # _PaddedEvalSource already holds this host's part.
  return grain.DataLoader(
      data_source=padded,
      sampler=grain.samplers.IndexSampler(len(padded), no_shard, shuffle=False,
                                          num_epochs=1),
      operations=[grain.transforms.Batch(batch_size, drop_remainder=False)],
      worker_count=data_cfg.worker_count,
      shard_options=no_shard,
      read_options=_read_options(data_cfg))

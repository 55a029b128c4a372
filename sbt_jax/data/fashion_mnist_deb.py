"""TFDS builder for Fashion-MNIST from Debian's `dataset-fashion-mnist` package.

No download: the builder reads the IDX .gz files that package installs (or those in
$SBT_FMNIST_DIR) and writes an ArrayRecord dataset readable by `tfds.data_source` without
TensorFlow. Importing this module registers the name `fashion_mnist_deb`.
"""
import gzip
import os
import pathlib

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

DEFAULT_DIR = '/usr/share/datasets/fashion-mnist'
ENV_DIR = 'SBT_FMNIST_DIR'
_FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}
_CLASS_NAMES = ('t-shirt_top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt',
                'sneaker', 'bag', 'ankle_boot')


def source_dir() -> pathlib.Path:
  """Directory holding the IDX .gz files ($SBT_FMNIST_DIR, else the Debian path)."""
  return pathlib.Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


def _check_exists(path: pathlib.Path) -> None:
  if not path.exists():
    names = ', '.join(name for pair in _FILES.values() for name in pair)
    raise FileNotFoundError(
        f'Fashion-MNIST file {path} not found. Install it with '
        f'`sudo apt-get install dataset-fashion-mnist`, or set ${ENV_DIR} to a directory '
        f'holding {names}.')


def read_idx(path: pathlib.Path) -> np.ndarray:
  """Reads a gzipped IDX file (big-endian header: magic, dims) into a uint8 array."""
  _check_exists(path)
  with gzip.open(path, 'rb') as f:
    data = f.read()
  magic = int.from_bytes(data[:4], 'big')
  dtype_code, ndim = magic >> 8, magic & 0xFF
  if dtype_code != 0x08:  # 0x08 = unsigned byte
    raise ValueError(f'{path}: IDX type {dtype_code:#x} is not uint8 (magic {magic:#x}).')
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
  values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
  if values.size != int(np.prod(shape)):
    raise ValueError(f'{path}: header says shape {shape}, file holds {values.size} values.')
  return values.reshape(shape)


class FashionMnistDeb(tfds.core.GeneratorBasedBuilder):
  """Fashion-MNIST (60k train / 10k test, 28x28 grayscale, 10 classes) from local files."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Debian dataset-fashion-mnist IDX files as ArrayRecord.'}

  # TFDS's own lookup of this file needs the `importlib_resources` backport, which
  # tensorflow-datasets does not declare on Python >= 3.9; this file is where it looks.
  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    return epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description='Fashion-MNIST read from the local IDX files of Debian\'s '
                    'dataset-fashion-mnist package (no download).',
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
            'label': tfds.features.ClassLabel(names=_CLASS_NAMES),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://github.com/zalandoresearch/fashion-mnist',
        license='MIT',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    root = source_dir()
    for pair in _FILES.values():
      for name in pair:
        _check_exists(root / name)  # Fail before TFDS starts writing.
    return {split: self._generate_examples(root / images, root / labels)
            for split, (images, labels) in _FILES.items()}

  def _generate_examples(self, images_path, labels_path):
    images_NxHxW = read_idx(images_path)
    labels_N = read_idx(labels_path)
    if images_NxHxW.shape[1:] != (28, 28) or len(images_NxHxW) != len(labels_N):
      raise ValueError(f'{images_path} {images_NxHxW.shape} and {labels_path} '
                       f'{labels_N.shape} are not N x 28 x 28 images with N labels.')
    for i, (image_HxW, label) in enumerate(zip(images_NxHxW, labels_N)):
      yield i, {'image': image_HxW[:, :, None], 'label': int(label)}

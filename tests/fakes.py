"""Tiny stand-ins the tests build themselves: Fashion-MNIST IDX files, configs."""
import gzip
import pathlib

import jax
import numpy as np

from sbt_jax.data import fashion_mnist_deb
from sbt_jax.data import prepare

NUM_TRAIN, NUM_TEST = 40, 20


def image_HxW(base: int) -> np.ndarray:
  """Train image i has pixel[r, c] = base + r, so batches map back to example ids."""
  return np.repeat((base + np.arange(28, dtype=np.uint8))[:, None], 28, axis=1)


def write_idx(path: pathlib.Path, array: np.ndarray) -> None:
  header = (0x0800 | array.ndim).to_bytes(4, 'big')
  header += b''.join(int(n).to_bytes(4, 'big') for n in array.shape)
  with gzip.open(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


def write_fake_fashion_mnist(root: pathlib.Path) -> None:
  """Train image i: base 3i, label i % 10; test image i: base 128 + 3i, label 3i % 10."""
  root.mkdir(parents=True, exist_ok=True)
  for prefix, n, offset, label_mult in (('train', NUM_TRAIN, 0, 1), ('t10k', NUM_TEST, 128, 3)):
    write_idx(root / f'{prefix}-images-idx3-ubyte.gz',
              np.stack([image_HxW(offset + 3 * i) for i in range(n)]))
    write_idx(root / f'{prefix}-labels-idx1-ubyte.gz', np.arange(n) * label_mult % 10)


def build_fake_tfds(tmp: pathlib.Path, monkeypatch) -> str:
  """Builds fashion_mnist_deb from fake IDX files into tmp/tfds; returns that data_dir."""
  write_fake_fashion_mnist(tmp / 'idx')
  monkeypatch.setenv(fashion_mnist_deb.ENV_DIR, str(tmp / 'idx'))
  prepare.prepare('fashion_mnist_deb', str(tmp / 'tfds'))
  return str(tmp / 'tfds')


def jit_init(module, rng, *args, **kwargs):
  """module.init(rng, *args, **kwargs) compiled as one program: an eager init compiles every
  primitive separately (hundreds of compilations, most of a small test's time on a CPU)."""
  return jax.jit(lambda r: module.init(r, *args, **kwargs))(rng)

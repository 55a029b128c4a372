"""Streamed Gaussian statistics of features (count, sum, sum of outer products in float64).

Batches and hosts each keep a `FeatureStats`; `merge` (or `merge_across_processes`) adds them,
so the mean and covariance equal those of all features at once. Reference statistics are
saved as .npz {mu, sigma, n, feature}; ADM-style reference batches
(`VIRTUAL_imagenet256_labeled.npz`: `mu`, `sigma`, images in `arr_0`) load too.
"""
import dataclasses
import zipfile

import jax
from jax.experimental import multihost_utils
import numpy as np

from sbt_jax import paths

# Names of the feature spaces; saved with the statistics and checked on load.
INCEPTION_POOL3 = 'inception_pool3'
VGG16_RELU5_3_GAP = 'vgg16_relu5_3_gap'


@dataclasses.dataclass
class FeatureStats:
  """n, sum_D and outer_DxD = sum x x^T over every feature vector seen (float64)."""
  n: int
  sum_D: np.ndarray
  outer_DxD: np.ndarray

  @classmethod
  def zeros(cls, dim: int) -> 'FeatureStats':
    return cls(0, np.zeros(dim, np.float64), np.zeros((dim, dim), np.float64))

  @property
  def dim(self) -> int:
    return self.sum_D.shape[0]

  def update(self, feats_NxD, mask_N=None) -> None:
    """Adds the rows of feats_NxD (only those with mask 1, when a mask is given)."""
    x = np.asarray(feats_NxD, np.float64)
    if mask_N is not None:
      x = x[np.asarray(mask_N) > 0]
    if x.ndim != 2 or x.shape[1] != self.dim:
      raise ValueError(f'features of shape {x.shape}; expected [N, {self.dim}]')
    self.n += x.shape[0]
    self.sum_D += x.sum(axis=0)
    self.outer_DxD += x.T @ x

  def merge(self, other: 'FeatureStats') -> 'FeatureStats':
    return FeatureStats(self.n + other.n, self.sum_D + other.sum_D,
                        self.outer_DxD + other.outer_DxD)

  @property
  def mean(self) -> np.ndarray:
    if self.n < 1:
      raise ValueError('no features were accumulated')
    return self.sum_D / self.n

  @property
  def cov(self) -> np.ndarray:
    """Unbiased covariance (divides by n - 1, as np.cov and the FID references)."""
    if self.n < 2:
      raise ValueError(f'a covariance needs at least 2 features; got {self.n}')
    mu = self.mean
    cov = (self.outer_DxD - self.n * np.outer(mu, mu)) / (self.n - 1)
    return (cov + cov.T) / 2


def allgather_exact(x) -> np.ndarray:
  """[P, ...] of every process's x, bit-exact for float64/int64 (sent as uint32 words)."""
  x = np.ascontiguousarray(x)
  if jax.process_count() == 1:
    return x[None]
  words = x.view(np.uint32) if x.dtype.itemsize == 8 else x
  gathered = np.asarray(multihost_utils.process_allgather(words))
  return gathered.view(x.dtype).reshape((-1,) + x.shape)


def merge_across_processes(stats: FeatureStats) -> FeatureStats:
  """The sum of every process's statistics (identical on all processes)."""
  if jax.process_count() == 1:
    return stats
  n = allgather_exact(np.array([stats.n], np.int64)).sum()
  return FeatureStats(int(n), allgather_exact(stats.sum_D).sum(0),
                      allgather_exact(stats.outer_DxD).sum(0))


@dataclasses.dataclass
class ReferenceStats:
  """Mean and covariance loaded from a file (n may be unknown)."""
  mean: np.ndarray
  cov: np.ndarray
  n: int | None
  feature: str | None
  path: str


def save(path: str, stats: FeatureStats, feature: str) -> str:
  """Writes {mu, sigma, n, feature} (.npz) for use as a reference later."""
  paths.save_npz(path, mu=stats.mean, sigma=stats.cov, n=np.int64(stats.n),
                 feature=np.str_(feature))
  return path


def _npz_array_len(path: str, key: str) -> int | None:
  """Leading dimension of an array inside an .npz without reading its data."""
  with paths.open_file(path, 'rb') as raw, zipfile.ZipFile(raw) as zf:
    name = key + '.npy'
    if name not in zf.namelist():
      return None
    with zf.open(name) as f:
      version = np.lib.format.read_magic(f)
      read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                     else np.lib.format.read_array_header_2_0)
      shape = read_header(f)[0]
  return int(shape[0]) if shape else None


def load(path: str, feature: str) -> ReferenceStats:
  """Reads .npz reference statistics (ours, or ADM-style with mu/sigma and images in arr_0).

  A file that names another feature space than `feature` is an error; a file without a
  name (ADM's) is taken to hold Inception pool3 statistics.
  """
  try:
    with paths.open_file(path, 'rb') as raw, np.load(raw, allow_pickle=False) as data:
      keys = set(data.files)
      if not {'mu', 'sigma'} <= keys:
        raise ValueError(f'reference statistics {path} have keys {sorted(keys)}; expected '
                         "'mu' and 'sigma' (and optionally 'n', 'feature')")
      mu, sigma = data['mu'].astype(np.float64), data['sigma'].astype(np.float64)
      n = int(data['n']) if 'n' in keys else None
      stored = str(data['feature']) if 'feature' in keys else None
  except (OSError, zipfile.BadZipFile, EOFError) as e:
    raise ValueError(f'reference statistics {path} are unreadable: {e}') from None
  if n is None and 'arr_0' in keys:
    n = _npz_array_len(path, 'arr_0')
  if (stored or INCEPTION_POOL3) != feature:
    raise ValueError(f'reference statistics {path} are of {stored or INCEPTION_POOL3!r} '
                     f'features; this metric needs {feature!r}')
  d = mu.shape[0] if mu.ndim == 1 else -1
  if mu.ndim != 1 or sigma.shape != (d, d):
    raise ValueError(f'reference statistics {path}: mu {mu.shape}, sigma {sigma.shape}; '
                     'expected [D] and [D, D]')
  return ReferenceStats(mu, sigma, n, stored, path)

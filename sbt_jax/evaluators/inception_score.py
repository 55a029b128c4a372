"""Inception Score from streamed class probabilities, in float64.

  IS = exp(E_x KL(p(y|x) || p(y))) = exp(mean_x sum_y p log p  -  sum_y pbar log pbar)

so each split needs only n, sum_x p(y|x) and sum_x sum_y p log p: mergeable across batches
and hosts. As the reference implementations (improved-GAN, ADM), images are cut into
`num_splits` contiguous parts by their index and the score is the mean (and std) over parts;
the logits are pool3 @ W without the fc bias (`inception.features(...)['logits_unbiased']`).
"""
import dataclasses

import numpy as np
from scipy import special

from sbt_jax.evaluators import feature_stats


@dataclasses.dataclass
class InceptionScoreStats:
  """Per-split n_S, sum_p_SxC and sum_plogp_S."""
  n_S: np.ndarray
  sum_p_SxC: np.ndarray
  sum_plogp_S: np.ndarray

  @classmethod
  def zeros(cls, num_classes: int, num_splits: int = 1) -> 'InceptionScoreStats':
    return cls(np.zeros(num_splits, np.int64), np.zeros((num_splits, num_classes)),
               np.zeros(num_splits))

  @property
  def num_splits(self) -> int:
    return self.n_S.shape[0]

  def update(self, logits_NxC, split_N=None, mask_N=None) -> None:
    """Adds images with these logits; split_N (int in [0, num_splits)) picks each one's part."""
    logits = np.asarray(logits_NxC, np.float64)
    split = np.zeros(len(logits), np.int64) if split_N is None else np.asarray(split_N)
    if mask_N is not None:
      keep = np.asarray(mask_N) > 0
      logits, split = logits[keep], split[keep]
    if split.size and (split.min() < 0 or split.max() >= self.num_splits):
      raise ValueError(f'split ids must lie in [0, {self.num_splits})')
    log_p = special.log_softmax(logits, axis=-1)
    p = np.exp(log_p)
    np.add.at(self.n_S, split, 1)
    np.add.at(self.sum_p_SxC, split, p)
    np.add.at(self.sum_plogp_S, split, np.sum(p * log_p, axis=-1))

  def merge(self, other: 'InceptionScoreStats') -> 'InceptionScoreStats':
    return InceptionScoreStats(self.n_S + other.n_S, self.sum_p_SxC + other.sum_p_SxC,
                               self.sum_plogp_S + other.sum_plogp_S)

  def scores(self) -> np.ndarray:
    """IS of each non-empty split."""
    used = self.n_S > 0
    if not used.any():
      raise ValueError('no images were accumulated')
    n = self.n_S[used].astype(np.float64)
    p_bar = self.sum_p_SxC[used] / n[:, None]
    ent_bar = np.sum(special.xlogy(p_bar, p_bar), axis=-1)
    return np.exp(self.sum_plogp_S[used] / n - ent_bar)

  def value(self) -> tuple[float, float]:
    """(mean, std) of the per-split scores."""
    s = self.scores()
    return float(np.mean(s)), float(np.std(s))


def split_ids(index_N, total: int, num_splits: int) -> np.ndarray:
  """Contiguous parts: image i of `total` belongs to part i * num_splits // total."""
  index = np.asarray(index_N, np.int64)
  return np.minimum(index * num_splits // max(total, 1), num_splits - 1)


def merge_across_processes(stats: InceptionScoreStats) -> InceptionScoreStats:
  gather = feature_stats.allgather_exact
  return InceptionScoreStats(gather(stats.n_S).sum(0), gather(stats.sum_p_SxC).sum(0),
                             gather(stats.sum_plogp_S).sum(0))


def inception_score(logits_NxC, num_splits: int = 1) -> tuple[float, float]:
  """One-shot IS (mean, std over contiguous splits) of a set of logits."""
  logits = np.asarray(logits_NxC)
  stats = InceptionScoreStats.zeros(logits.shape[1], num_splits)
  stats.update(logits, split_ids(np.arange(len(logits)), len(logits), num_splits))
  return stats.value()

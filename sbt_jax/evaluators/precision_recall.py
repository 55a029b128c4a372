"""Improved precision and recall (Kynkaanniemi et al. 2019): k-NN manifolds of features.

Each set's manifold is the union of balls around its points, radius = distance to the
k-th nearest other point of the same set. Precision = share of generated (or reconstructed)
points inside the real manifold; recall = share of real points inside the generated one.
Distances run in jitted chunks on the default device (float32, Precision.HIGHEST).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

_CHUNK = 1024


def _squared_distances(a_QxD, b_NxD):
  return (jnp.sum(a_QxD ** 2, -1)[:, None] + jnp.sum(b_NxD ** 2, -1)[None, :]
          - 2 * jnp.dot(a_QxD, b_NxD.T, precision=jax.lax.Precision.HIGHEST))


@functools.partial(jax.jit, static_argnames='k')
def _knn_chunk(query_QxD, ref_NxD, *, k: int):
  """Distance of each query row to its k-th nearest ref row (itself included)."""
  d2 = jnp.maximum(_squared_distances(query_QxD, ref_NxD), 0.0)
  return jnp.sqrt(-jax.lax.top_k(-d2, k)[0][:, -1])


@jax.jit
def _covered_chunk(query_QxD, ref_NxD, radii_N):
  d2 = _squared_distances(query_QxD, ref_NxD)
  return jnp.any(jnp.sqrt(jnp.maximum(d2, 0.0)) <= radii_N[None, :], axis=1)


def _chunks(x_NxD):
  """Fixed-size chunks (the last zero-padded), so the jitted kernels compile once."""
  for i in range(0, len(x_NxD), _CHUNK):
    chunk = x_NxD[i:i + _CHUNK]
    n = len(chunk)
    if n < _CHUNK and len(x_NxD) > _CHUNK:
      chunk = np.concatenate([chunk, np.zeros((_CHUNK - n,) + chunk.shape[1:], chunk.dtype)])
    yield chunk, n


def knn_radii(feats_NxD, k: int = 3) -> np.ndarray:
  """Distance from each point to its k-th nearest neighbour in the same set (not itself)."""
  x = np.asarray(feats_NxD, np.float32)
  if len(x) <= k:
    raise ValueError(f'k-NN radii with k={k} need more than {k} points; got {len(x)}')
  out = [np.asarray(_knn_chunk(c, x, k=k + 1))[:n] for c, n in _chunks(x)]
  return np.concatenate(out)


def coverage(query_MxD, ref_NxD, radii_N) -> float:
  """Share of query points within radii_N[i] of some ref point i."""
  q, r = np.asarray(query_MxD, np.float32), np.asarray(ref_NxD, np.float32)
  radii = np.asarray(radii_N, np.float32)
  hits = [np.asarray(_covered_chunk(c, r, radii))[:n] for c, n in _chunks(q)]
  return float(np.mean(np.concatenate(hits)))


def precision_recall(real_NxD, fake_MxD, k: int = 3) -> dict[str, float]:
  """{'precision', 'recall'} of fake features against real features."""
  real, fake = np.asarray(real_NxD, np.float32), np.asarray(fake_MxD, np.float32)
  return {'precision': coverage(fake, real, knn_radii(real, k)),
          'recall': coverage(real, fake, knn_radii(fake, k))}

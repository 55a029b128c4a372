"""Frechet distance between two Gaussians fitted to features (FID on Inception pool3,
FD-VGG on VGG16 features), in float64.

  FD = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})

tr((S1 S2)^{1/2}) is the sum of the square roots of the eigenvalues of S1^{1/2} S2 S1^{1/2},
a symmetric PSD matrix, so `eigh` gives it without the complex round-off that scipy's
`sqrtm(S1 @ S2)` (pytorch-fid's formula) has to clean up; the two agree to rounding.
"""
import numpy as np


def _sqrt_psd(s_DxD: np.ndarray) -> np.ndarray:
  w, v = np.linalg.eigh(s_DxD)
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1_DxD, sigma2_DxD) -> float:
  """tr((S1 S2)^{1/2}) for symmetric PSD S1, S2."""
  s1_half = _sqrt_psd(np.asarray(sigma1_DxD, np.float64))
  m_DxD = s1_half @ np.asarray(sigma2_DxD, np.float64) @ s1_half
  eig = np.linalg.eigvalsh((m_DxD + m_DxD.T) / 2)
  return float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))


def frechet_distance(mu1_D, sigma1_DxD, mu2_D, sigma2_DxD) -> float:
  """Frechet distance between N(mu1, S1) and N(mu2, S2), computed in float64."""
  mu1, mu2 = np.asarray(mu1_D, np.float64), np.asarray(mu2_D, np.float64)
  s1, s2 = np.asarray(sigma1_DxD, np.float64), np.asarray(sigma2_DxD, np.float64)
  d = mu1.shape[0]
  for name, x, shape in (('mu1', mu1, (d,)), ('mu2', mu2, (d,)), ('sigma1', s1, (d, d)),
                         ('sigma2', s2, (d, d))):
    if x.shape != shape:
      raise ValueError(f'frechet_distance: {name} has shape {x.shape}, expected {shape} '
                       '(both Gaussians must live in the same feature space)')
    if not np.all(np.isfinite(x)):
      raise ValueError(f'frechet_distance: {name} is not finite')
  diff = mu1 - mu2
  fd = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2)
  return float(max(fd, 0.0))


def frechet_distance_of_stats(stats1, stats2) -> float:
  """FD between two objects with `.mean` and `.cov` (feature_stats.FeatureStats or loaded)."""
  return frechet_distance(stats1.mean, stats1.cov, stats2.mean, stats2.cov)

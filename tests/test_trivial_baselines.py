"""Trivial reconstruction baselines (mean colour, bilinear down/up at a bit budget)."""
import json
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from sbt_jax.evaluators import trivial_baselines


def _images(b=4, size=8, seed=0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.uniform(-1, 1, (b, size, size, 3)).astype(np.float32))


def test_mean_colour_keeps_each_images_mean_and_is_flat():
  x = _images()
  m = np.asarray(trivial_baselines.mean_colour(x))
  np.testing.assert_allclose(m.mean(axis=(1, 2)), np.asarray(x).mean(axis=(1, 2)), atol=1e-6)
  assert np.ptp(m, axis=(1, 2)).max() < 1e-6


def test_quantize_has_the_right_number_of_levels():
  x = jnp.linspace(-1, 1, 1001)
  assert len(np.unique(np.asarray(trivial_baselines.quantize(x, 3)))) == 8
  np.testing.assert_allclose(trivial_baselines.quantize(x, 8), x, atol=1 / 255 + 1e-6)


def test_down_up_at_full_size_and_8_bits_is_near_identity_and_coarser_is_worse():
  x = _images(size=8)
  full = trivial_baselines.scores(x, trivial_baselines.down_up(x, 8, 8))['psnr']
  coarse = trivial_baselines.scores(x, trivial_baselines.down_up(x, 2, 8))['psnr']
  assert full.min() > 45 and (coarse < full - 10).all()


def test_down_up_options_fit_the_bit_budget():
  options = trivial_baselines.down_up_options(128, channels=3, image_size=32)
  assert options == [(1, 8), (2, 8), (3, 4), (4, 2), (5, 1), (6, 1)]
  assert all(s * s * 3 * v <= 128 for s, v in options)
  assert trivial_baselines.down_up_options(2, channels=3, image_size=32) == []


def test_evaluate_ignores_padding_and_picks_the_best_size():
  x = _images(b=3, size=8)
  pad = jnp.concatenate([x, jnp.zeros_like(x[:1])])  # a flat padding image: inf PSNR
  mask = np.array([1, 1, 1, 0], np.float32)
  out = trivial_baselines.evaluate([{'image': pad, 'mask': mask}], [96, 1536], 3, 8)
  assert out['num_images'] == 3 and np.isfinite(out['mean_colour']['psnr'])
  expected = trivial_baselines.scores(x, trivial_baselines.mean_colour(x))['psnr'].mean()
  np.testing.assert_allclose(out['mean_colour']['psnr'], expected, rtol=1e-5)
  per_option = {(s, v): trivial_baselines.scores(x, trivial_baselines.down_up(x, s, v))[
      'psnr'].mean() for s, v in trivial_baselines.down_up_options(96, 3, 8)}
  best = max(per_option, key=per_option.get)
  assert (out['down_up@96']['size'], out['down_up@96']['bits_per_value']) == best
  np.testing.assert_allclose(out['down_up@96']['psnr'], per_option[best], rtol=1e-5)
  assert out['down_up@1536']['size'] == 8  # 8x8x3 values at 8 bits: the image itself
  assert out['down_up@1536']['psnr'] > out['down_up@96']['psnr'] > out['mean_colour']['psnr']


@pytest.mark.parametrize('args, message', [
    (['--bits', 'abc'], "--bits='abc'"),
    (['--dataset', 'no_such_dataset_xyz'], 'no_such_dataset_xyz'),
])
def test_cli_bad_input_is_one_line(tmp_path, args, message):
  out = tmp_path / 'b.json'
  r = subprocess.run([sys.executable, '-m', 'sbt_jax.tools.trivial_baselines', '--data_dir',
                      str(tmp_path / 'tfds'), '--out', str(out)] + args,
                     capture_output=True, text=True, check=False)
  assert r.returncode == 2, r.stderr
  last = r.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and message in last and 'Traceback' not in r.stderr
  assert not out.exists()


def test_cli_on_an_image_folder(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for i in range(3):
    Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(tmp_path / f'{i}.png')
  out = tmp_path / 'res' / 'b.json'
  r = subprocess.run([sys.executable, '-m', 'sbt_jax.tools.trivial_baselines', '--dataset',
                      'folder', '--folder', str(tmp_path), '--image_size', '16', '--bits', '48',
                      '--out', str(out)], capture_output=True, text=True, check=False)
  assert r.returncode == 0, r.stderr
  results = json.loads(out.read_text())
  assert results['num_images'] == 3 and results['mean_colour']['ssim'] > 0.99
  assert 'mean_colour: PSNR' in r.stdout

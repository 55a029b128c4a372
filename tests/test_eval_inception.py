"""FID InceptionV3: weight files (.npz, torch zip and legacy .pth, no torch), errors, resize."""
import base64
import pickle
import zipfile
import zlib

import jax
import numpy as np
import pytest

from sbt_jax.evaluators import inception
from sbt_jax.evaluators import torch_checkpoint
from sbt_jax.tools import convert_inception


def random_flat_params(seed: int = 0) -> dict[str, np.ndarray]:
  """Random weights of the right shapes (He-scaled kernels, BN stats near identity)."""
  rs = np.random.RandomState(seed)
  flat = {}
  for name, shape in inception.param_shapes().items():
    leaf = name.rsplit('/', 1)[-1]
    if name == 'fc/kernel':
      v = rs.randn(*shape) * 0.05
    elif leaf == 'kernel':
      v = rs.randn(*shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
    elif leaf in ('scale', 'var'):
      v = rs.uniform(0.5, 1.5, shape)
    else:  # bias, mean
      v = rs.randn(*shape) * 0.1
    flat[name] = v.astype(np.float32)
  return flat


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
  """The same random weights as .npz, torch zip .pth and legacy .pth."""
  d = tmp_path_factory.mktemp('inception')
  flat = random_flat_params()
  paths = {'npz': str(d / 'inception.npz'), 'pth': str(d / 'pt_inception.pth'),
           'legacy': str(d / 'pt_inception_legacy.pth')}
  np.savez(paths['npz'], **flat)
  state_dict = torch_checkpoint.flax_to_torch(flat)
  # What pytorch-fid's file also holds: BatchNorm step counters (skipped on load).
  state_dict['Conv2d_1a_3x3.bn.num_batches_tracked'] = np.array(0, np.int64)
  torch_checkpoint.write_torch(paths['pth'], state_dict)
  torch_checkpoint.write_torch(paths['legacy'], state_dict, legacy=True)
  return flat, paths


def test_architecture_matches_pytorch_fid_parameter_count():
  shapes = inception.param_shapes()
  # torchvision Inception3 without aux head, 1008 classes: 23,850,960 trainable parameters;
  # plus BatchNorm running mean and var (2 x 17,216 channels) that torch keeps as buffers.
  assert sum(int(np.prod(s)) for s in shapes.values()) == 23_850_960 + 2 * 17_216
  assert shapes['Mixed_7c/branch_pool/conv/kernel'] == (1, 1, 2048, 192)
  assert shapes['fc/kernel'] == (2048, 1008)


def test_loads_npz_and_torch_files_and_gives_pool3(weights):
  flat, paths = weights
  loaded = {k: inception.load_flat_params(p) for k, p in paths.items()}
  for fmt in ('pth', 'legacy'):
    assert loaded[fmt].keys() == flat.keys()
    for name in flat:
      np.testing.assert_array_equal(loaded[fmt][name], flat[name], err_msg=f'{fmt}: {name}')
  params = inception.load_params(paths['pth'])
  images = np.random.RandomState(0).uniform(-1, 1, (2, 28, 28, 1)).astype(np.float32)
  out = jax.jit(inception.features)(params, images)
  assert out['pool3'].shape == (2, 2048)
  assert out['logits'].shape == out['logits_unbiased'].shape == (2, 1008)
  pool3 = np.asarray(out['pool3'])
  assert np.all(np.isfinite(pool3)) and np.all(pool3 >= 0) and pool3.std() > 0
  assert not np.allclose(pool3[0], pool3[1])
  np.testing.assert_allclose(np.asarray(out['logits']) - np.asarray(out['logits_unbiased']),
                             np.broadcast_to(flat['fc/bias'], (2, 1008)), atol=1e-4)
  # Gray images are repeated to RGB.
  rgb = jax.jit(inception.features)(params, np.repeat(images, 3, -1))['pool3']
  np.testing.assert_allclose(np.asarray(rgb), pool3, rtol=1e-5, atol=1e-5)


def test_each_weights_file_is_read_once(weights, monkeypatch):
  """A 100 MB gs:// weights file is fetched once, whatever its format."""
  flat, paths = weights
  reads = []
  real = torch_checkpoint.paths.read_bytes
  monkeypatch.setattr(torch_checkpoint.paths, 'read_bytes',
                      lambda p: reads.append(p) or real(p))
  for fmt, path in paths.items():
    reads.clear()
    loaded = inception.load_flat_params(path)
    assert reads == [path], fmt
    np.testing.assert_array_equal(loaded['fc/bias'], flat['fc/bias'], err_msg=fmt)


def test_converter_cli_writes_loadable_npz(weights, tmp_path, capsys):
  flat, paths = weights
  out = str(tmp_path / 'converted.npz')
  assert convert_inception.main(['convert_inception', paths['legacy'], out]) == 0
  assert 'Wrote 472 arrays (23,885,392 parameters)' in capsys.readouterr().out
  converted = inception.load_flat_params(out)
  np.testing.assert_array_equal(converted['Mixed_6e/branch7x7_2/conv/kernel'],
                                flat['Mixed_6e/branch7x7_2/conv/kernel'])
  assert convert_inception.main(['convert_inception', paths['pth']]) == 2
  assert convert_inception.main(['convert_inception', str(tmp_path / 'no.pth'), out]) == 1
  assert 'no.pth' in capsys.readouterr().err


def test_missing_truncated_and_mismatched_files_are_clear_errors(weights, tmp_path):
  flat, paths = weights
  with pytest.raises(FileNotFoundError, match=r'nope\.pth.*nothing is downloaded'):
    inception.load_params(str(tmp_path / 'nope.pth'))
  for fmt in ('npz', 'pth', 'legacy'):
    data = open(paths[fmt], 'rb').read()
    cut = tmp_path / f'cut_{fmt}.bin'
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(inception.WeightsError, match=f'cut_{fmt}.bin'):
      inception.load_params(str(cut))
  wrong = dict(flat)
  wrong['Mixed_6e/branch7x7_2/conv/kernel'] = wrong['Mixed_6e/branch7x7_2/conv/kernel'].transpose(
      1, 0, 2, 3)
  np.savez(tmp_path / 'wrong.npz', **wrong)
  with pytest.raises(inception.WeightsError,
                     match=r"wrong\.npz: parameter 'Mixed_6e/branch7x7_2/conv/kernel' has "
                     r'shape \(7, 1, 192, 192\), expected \(1, 7, 192, 192\)'):
    inception.load_params(str(tmp_path / 'wrong.npz'))
  missing = {k: v for k, v in flat.items() if not k.startswith('Mixed_5b/branch_pool')}
  torch_checkpoint.write_torch(str(tmp_path / 'missing.pth'),
                                torch_checkpoint.flax_to_torch(missing))
  with pytest.raises(inception.WeightsError,
                     match=r"missing\.pth: parameter 'Mixed_5b/branch_pool/bn/bias' \(torch "
                     r'name Mixed_5b\.branch_pool\.bn\.bias\) is missing; expected shape \(32,\)'):
    inception.load_params(str(tmp_path / 'missing.pth'))
  # torchvision's ImageNet Inception (1000 classes) is not the FID network.
  tv = dict(flat, **{'fc/kernel': np.zeros((2048, 1000), np.float32)})
  np.savez(tmp_path / 'torchvision.npz', **torch_checkpoint.flax_to_torch(tv))
  with pytest.raises(inception.WeightsError, match=r"'fc/kernel' has shape \(2048, 1000\)"):
    inception.load_params(str(tmp_path / 'torchvision.npz'))
  extra = dict(flat, **{'head/kernel': np.zeros(3, np.float32)})
  np.savez(tmp_path / 'extra.npz', **extra)
  with pytest.raises(inception.WeightsError, match="unexpected parameter 'head/kernel'"):
    inception.load_params(str(tmp_path / 'extra.npz'))


def test_pickle_cannot_run_code(tmp_path):
  class Evil:
    def __reduce__(self):
      return (print, ('pwned',))
  path = tmp_path / 'evil.pth'
  with zipfile.ZipFile(path, 'w') as zf:
    zf.writestr('archive/data.pkl', pickle.dumps({'a': Evil()}, protocol=2))
  with pytest.raises(inception.WeightsError,
                     match=r'evil\.pth: refusing to load the global .*print'):
    inception.load_params(str(path))


def _torch_bilinear(x_BxHxWxC, size):
  """torch F.interpolate(mode='bilinear', align_corners=False), written out in numpy."""
  def axis_weights(n_in):
    src = np.maximum((np.arange(size) + 0.5) * n_in / size - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = np.zeros((size, n_in))
    np.add.at(w, (np.arange(size), i0), 1 - (src - i0))
    np.add.at(w, (np.arange(size), i1), src - i0)
    return w
  wh, ww = axis_weights(x_BxHxWxC.shape[1]), axis_weights(x_BxHxWxC.shape[2])
  return np.einsum('oh,bhwc,pw->bopc', wh, x_BxHxWxC, ww, optimize=True)


@pytest.mark.parametrize('size', [28, 64, 512])
def test_resize_matches_torch_bilinear_without_antialias(size):
  x = np.random.RandomState(size).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
  ours = np.asarray(jax.jit(inception.resize_input)(x))
  # float32 source coordinates (in torch too) differ from float64 ones by ~1e-7 * size.
  np.testing.assert_allclose(ours, _torch_bilinear(x.astype(np.float64), 299),
                             atol=2e-5 if size < 299 else 1e-4)


# Tiny state dicts saved by torch 2.14.1 itself (torch.save, zip and legacy formats), zlib +
# base64: {'w': arange(12).reshape(3, 4).t() / 4 (non-contiguous), 'row': a view at storage
# offset 4, 'h': float16, 'n': int64 scalar, 'b': bfloat16}.
_TORCH_SAVED = {
    'zip': (
        'eNqllU9M03AUx39bRxkVYSDKHxXxL5vCWDvYH0FYGrOY1EQYMSFelrKVrbGsvO4HRONhCRmJR40x8WK8aLx60huc'
        'vXnx5EHjwXAwHrwbf78WRttloOyXvDVb3vf7Pu3ee52VGB9Cfj+qOwHUjWQjV1TXlLG8jOXwyn0tLXage45T8eZy'
        'uqYpOazqpTJ3x8grhpK/qeYwByiUAU9wwUPM1sGbwzpxC2dXsaqVuayhLK6qWj6LlVJZN7JrAgdMMLjQSpLLJFMu'
        'KOCzJFxa02U8b/3IQYtpGAF2gSHX3MoqtErtGPxzEpJ8ErMJbZJH8m0C97hIAY5haM/AcTPZ0Neho0jKFH3FliJb'
        'NIWdc0Tmq0JA8lShyxJ1YziRgR6zUhFOWpJdmluytlSDOWWm8NBLvBgMfRSCqUI/9RqwvE5jOJOBs2ZiCQYdXrf1'
        'UqHmdc5MEWCIeHkwnCdeoZDlcQHDxQxcMhMW4bLDQzQfDx+r+Vwx06IwTHy8GIKUyVuFEGW6avldwzCSgdHV8KzU'
        '6n/6p/Bmi0hozDZsh140VWuH8JJuLMs4u6YYZfK3p8WEqyv+/fCU4P2vLxuUmUZjggEU3yfY7ZGsrKmF0rJSwmkx'
        'ehSI2DgFmFmHHS8p4T0QoAvN1AAWH2BFp82eFiePfPPkaCrGmkIZqje+97OkCnsgQweadkzlWCQtXm8CwHKtTJOP'
        'GYRSJCokXpHYJvGVBEqRXUBiiEQkRUnf7vz+GKEzeAhpj5OUT4uBOlKUQNsVkbrOP1ruPsL9C83df+uuLyVY+fxD'
        'pyX9hxBMOQmizfT/9kxli9b+9jrXRwoi34G1O20dWBu+pvovytHqn14W7h7e/4NI2B9A89bLiqGSCXwo0+2fVfNp'
        'MfyfMHwkHk/EhLiQjCeTiYlxPiZMRJKJCDnJCSHKj/PR5AQvJCjli5/D74KEI2hSeihsjdO+xAJ15O73mFttX0C9'
        'zifuRY3WntvEvkQGHCZP7CZ1m8vtY18EXQ6fbgbVLyC33D6dHQ75cwa5dodba59Bpzblc2l5t9Y+Pa66bq3g1tq7'
        '36nta3Fpo26tvXc7HdpnNm2D/8zeUoPOZ82iQ5p9VmLZkb3RYEZrSs513fBa1w/s3qphza0z2WZ9t956Layl4cx8'
        'K/cvohoeUg=='),
    'legacy': (
        'eNptkstu00AUhseXNGDSEu6Ua8rV4RKFYBJnQ6IKVUgGSs3GG2SlzlAbWZ4ce9wKpErepAKegQVL3oI+ClseAYkF'
        'Z+wQGskj/WP7zDnf+X00mfxFC/983fjdeP/99Work1/+UnDfB6I7dULIJGaceSx0d2mcBCwCCROcZTwJA85D6tJo'
        'HIwikD85Ggb5hwl1k+AjTUDZB1V3KhhMfBZzqFiyo+BXEHFYslRHFQwW7UDVUtMUe3rYJqQexy6JthmPaUzHzwKP'
        'a0CaNki6I2HFHsgeZ7Hnt9yUB2GiuTHdToNw7HIaJSx2dzsaKLruVEVjzBztUFCLEm0jZCP+pghqUHFWMKdvdHq9'
        'jvmk3W73TAOWco/eJEVbtVccjm1ZxFIt5QCOW5KlHoD22Rd2TnCo2bCcZ8dsD1Z8bOqrfin0pF/A6luIUqdwypKm'
        'cLoAneFw1oZz+c/5cL7AzPw+H4Xv5nYv/Cc/7ve7hmn2u3ARyQqSV4VNZQqXBPlyQb7C4aoN13JyBNcXyC9w8HNy'
        'Y9Gz0UXbsIZkCck3kNxsFsSbHG7ZcDsnbsOdBeJ6PtxH3Tn17lGq0RcvHdCRKiO1KfzKU7gn/N4v6A84PLShJa7C'
        'W3H9SsqlsunKZfaVsmmptCWTYh0Osh81cnRlT3EbEDJEZahvA5FFyE8UGRJSRzVQ7aE0q6jOnso/hEkOs/W/zrHP'
        'Jw=='),
}


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
def test_reads_files_saved_by_torch(fmt, tmp_path):
  path = tmp_path / f'tiny_{fmt}.pth'
  path.write_bytes(zlib.decompress(base64.b64decode(_TORCH_SAVED[fmt])))
  sd = torch_checkpoint.read_torch(str(path))
  base = np.arange(12, dtype=np.float32).reshape(3, 4) / 4
  assert list(sd) == ['w', 'row', 'h', 'n', 'b']
  np.testing.assert_array_equal(sd['w'], base.T)
  np.testing.assert_array_equal(sd['row'], base[1])
  assert sd['h'].dtype == np.float16 and sd['h'].tolist() == [0.5, -2.0, 3.25]
  assert sd['n'].dtype == np.int64 and sd['n'].shape == () and int(sd['n']) == 7
  assert sd['b'].dtype == np.float32 and sd['b'].tolist() == [1.5, -1.0]

"""FID InceptionV3: weight files (.npz, torch zip and legacy .pth, no torch), errors, resize."""
import pickle
import zipfile

import jax
import numpy as np
import pytest

from sbt_jax.evaluators import inception
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
  state_dict = convert_inception.flax_to_torch(flat)
  # What pytorch-fid's file also holds: BatchNorm step counters (skipped on load).
  state_dict['Conv2d_1a_3x3.bn.num_batches_tracked'] = np.array(0, np.int64)
  convert_inception.write_torch(paths['pth'], state_dict)
  convert_inception.write_torch(paths['legacy'], state_dict, legacy=True)
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
  convert_inception.write_torch(str(tmp_path / 'missing.pth'),
                                convert_inception.flax_to_torch(missing))
  with pytest.raises(inception.WeightsError,
                     match=r"missing\.pth: parameter 'Mixed_5b/branch_pool/bn/bias' \(torch "
                     r'name Mixed_5b\.branch_pool\.bn\.bias\) is missing; expected shape \(32,\)'):
    inception.load_params(str(tmp_path / 'missing.pth'))
  # torchvision's ImageNet Inception (1000 classes) is not the FID network.
  tv = dict(flat, **{'fc/kernel': np.zeros((2048, 1000), np.float32)})
  np.savez(tmp_path / 'torchvision.npz', **convert_inception.flax_to_torch(tv))
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

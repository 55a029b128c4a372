"""The perceptual losses (losses/perceptual.py): the reference's ConvNeXt-S loss in Flax
(evaluators/convnext.py) against golden arrays of bytedance/1d-tokenizer's unmodified
PerceptualLoss (tests/golden/reference_convnext.py), its weights from torchvision files,
and loss names that are validated."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import titok_fmnist
from sbt_jax import config_defaults
from sbt_jax.evaluators import convnext
from sbt_jax.evaluators import torch_checkpoint
from sbt_jax.losses import perceptual
from sbt_jax.losses import reconstruction
from sbt_jax.tools import convert_convnext

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden', 'convnext_reference.npz')
SMALL = ((2, 1), (16, 32))  # the golden network: stages of 2 and 1 blocks, 16 / 32 channels


@pytest.fixture(name='golden', scope='module')
def golden_fixture():
  with np.load(GOLDEN) as g:
    return {k: g[k] for k in g.files}


@pytest.fixture(name='small_pth')
def small_pth_fixture(golden, tmp_path, monkeypatch):
  """The golden state dict as a torchvision .pth, and SIZES naming its network 'small'."""
  monkeypatch.setitem(convnext.SIZES, 'small', SMALL)
  path = str(tmp_path / 'small.pth')
  torch_checkpoint.write_torch(path, {k[3:]: v for k, v in golden.items()
                                      if k.startswith('sd/')})
  return path


def _images(golden, key):
  return jnp.asarray(golden[key] / np.float32(255) * 2 - 1)  # uint8 -> [-1, 1]


@pytest.mark.parametrize('size', [28, 240])
def test_convnext_loss_matches_the_reference(golden, small_pth, size):
  params = convnext.load_params(small_pth, 'small')
  x, y = _images(golden, f'input_{size}'), _images(golden, f'target_{size}')
  assert convnext.architecture(params) == (*SMALL, 1000)
  logits = convnext.logits(params, convnext.imagenet_input(x))
  np.testing.assert_allclose(logits, golden[f'logits_{size}'], atol=2e-6, rtol=1e-5)
  frozen = {'convnext': params}
  loss, metrics = perceptual.perceptual_loss(frozen, x, y, 'convnext_s', jnp.float32)
  np.testing.assert_allclose(loss, golden[f'loss_{size}'], rtol=1e-4)
  assert set(metrics) == {'convnext'}
  # The target side is a constant: its gradient is exactly zero, the input's is not.
  gx, gy = jax.grad(lambda a, b: perceptual.convnext_loss(params, a, b, jnp.float32),
                    argnums=(0, 1))(x, y)
  assert float(jnp.abs(gx).max()) > 0 and float(jnp.abs(gy).max()) == 0


def test_every_convnext_small_weight_maps_onto_the_network(golden):
  """torchvision's full convnext_small state dict names/shapes (from the golden file) map
  one to one onto the Flax network's parameters."""
  shapes = json.loads(str(golden['convnext_small_shapes']))
  flat = convnext.torch_to_flax({k: np.zeros(v, np.float32) for k, v in shapes.items()})
  expected = convnext.param_shapes('convnext_small')
  assert {k: v.shape for k, v in flat.items()} == expected
  assert sum(np.prod(s) for s in expected.values()) == 50_223_688  # torchvision's count


def test_convert_convnext_and_bad_weight_files(golden, small_pth, tmp_path, monkeypatch):
  out = str(tmp_path / 'small.npz')
  main = lambda *a: convert_convnext.weights_converter.main(  # pylint: disable=unnecessary-lambda-assignment
      ['convert_convnext', *a], lambda p: convnext.load_flat_params(p, 'small'),
      'convert_convnext')
  assert main(small_pth, out) == 0
  for k, v in convnext.load_flat_params(out, 'small').items():
    np.testing.assert_array_equal(v, convnext.load_flat_params(small_pth, 'small')[k])
  assert main(str(tmp_path / 'missing.pth'), out) == 1
  assert convert_convnext.main(['convert_convnext']) == 2
  state = {k[3:]: v for k, v in golden.items() if k.startswith('sd/')}
  del state['features.1.0.layer_scale']
  torch_checkpoint.write_torch(str(tmp_path / 'cut.pth'), state)
  with pytest.raises(convnext.WeightsError,
                     match=r"cut\.pth: parameter 'stage0_block0/layer_scale' is missing"):
    convnext.load_flat_params(str(tmp_path / 'cut.pth'), 'small')
  state['features.1.0.block'] = np.zeros(3, np.float32)  # a malformed name: one line
  torch_checkpoint.write_torch(str(tmp_path / 'odd.pth'), state)
  with pytest.raises(convnext.WeightsError, match=r"odd\.pth: parameter .* is missing|"
                                                   r"unexpected parameter 'features/1/0/block'"):
    convnext.load_flat_params(str(tmp_path / 'odd.pth'), 'small')
  with pytest.raises(FileNotFoundError, match=r"nope\.pth' not found.*nothing is downloaded"):
    convnext.load_flat_params(str(tmp_path / 'nope.pth'))
  with pytest.raises(convnext.WeightsError, match=r'small\.pth: parameter .* has shape'):
    convnext.load_flat_params(small_pth, 'convnext_small')  # the wrong network


@pytest.mark.parametrize('name, expected', [
    ('lpips', {'lpips': 1.0}), ('convnext_s', {'convnext_s': 1.0}), ('none', {}),
    ('lpips-convnext_s-1.0-0.1', {'lpips': 1 / 1.1, 'convnext_s': 0.1 / 1.1})])
def test_perceptual_names_parse_as_the_reference(name, expected):
  assert perceptual.parse(name) == pytest.approx(expected)


@pytest.mark.parametrize('name', ['vgg', 'lpips_vgg', 'convnext', 'lpips-convnext_s',
                                  'lpips-convnext_s-1-x', 'lpips-convnext_s-0-0'])
def test_an_unknown_perceptual_name_fails_validation(name):
  c = titok_fmnist.get_config('runlocal')
  c.loss.perceptual = name
  with pytest.raises(ValueError, match=f"loss.perceptual='{name}': expected 'lpips'"):
    config_defaults.validate(c)


def test_convnext_needs_its_weights_file_and_the_loss_weighs_both_nets(small_pth,
                                                                       monkeypatch):
  c = titok_fmnist.get_config('runlocal')
  c.loss.perceptual = 'lpips-convnext_s-1.0-0.1'
  c.loss.perceptual_weight = 0.5
  with pytest.raises(ValueError, match='needs loss.convnext_weights='):
    config_defaults.validate(c)
  c.loss.convnext_weights = small_pth
  config_defaults.validate(c)
  monkeypatch.setattr(perceptual, 'CONVNEXT', 'small')
  frozen = perceptual.frozen_params(c.loss)
  assert convnext.architecture(frozen['convnext']) == (*SMALL, 1000)
  rs = np.random.RandomState(0)
  x = jnp.asarray(rs.uniform(-1, 1, (2, 28, 28, 1)), jnp.float32)
  r = jnp.asarray(rs.uniform(-1, 1, (2, 28, 28, 1)), jnp.float32)
  logits = convnext.logits(frozen['convnext'], convnext.imagenet_input(jnp.concatenate([r, x])))
  expected_cx = jnp.mean(jnp.square(logits[:2] - logits[2:]))
  loss, metrics = reconstruction.reconstruction_loss(r, x, frozen, c.loss, jnp.float32)
  expected_lp = perceptual.lpips_loss(frozen['lpips'], r, x, jnp.float32)
  np.testing.assert_allclose(metrics['convnext'], expected_cx, rtol=1e-5)
  np.testing.assert_allclose(metrics['lpips'], expected_lp, rtol=1e-5)
  pixel = jnp.mean(jnp.abs(r - x)) + jnp.mean(jnp.square(r - x))
  np.testing.assert_allclose(
      loss, pixel + 0.5 * (expected_lp / 1.1 + 0.1 * expected_cx / 1.1), rtol=1e-5)

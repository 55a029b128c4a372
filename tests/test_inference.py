"""encode / decode / reconstruct on the user's own image files from a trained workdir."""
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from sbt_jax import checkpointing
from sbt_jax import inference


@pytest.fixture
def workdir(tiny_workdir):
  return tiny_workdir


@pytest.fixture(scope='module')
def image_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp('imgs')
  rs = np.random.RandomState(0)
  Image.fromarray((rs.rand(40, 30, 3) * 255).astype(np.uint8)).save(d / 'rgb.png')
  Image.fromarray((rs.rand(28, 28) * 255).astype(np.uint8)).save(d / 'gray.jpg')
  return d


def test_encode_decode_roundtrip(workdir, image_dir):
  tok = inference.Tokenizer(workdir)
  assert tok.step == 4
  images, files = inference.load_images([str(image_dir)], 28, 1)
  assert images.shape == (2, 28, 28, 1) and len(files) == 2
  ids = tok.encode(images)
  assert ids.shape == (2, 8) and ids.dtype == np.int32
  recon = tok.decode(ids)
  assert recon.shape == images.shape
  np.testing.assert_allclose(tok.reconstruct(images), recon, atol=1e-6)
  # Batching with padding gives the same ids as one call per image.
  np.testing.assert_array_equal(np.concatenate([tok.encode(images[i:i + 1]) for i in range(2)]),
                                ids)


def test_bad_inputs_are_clear_errors(workdir, tmp_path):
  tok = inference.Tokenizer(workdir)
  with pytest.raises(ValueError, match='shape'):
    tok.encode(np.zeros((1, 32, 32, 3), np.float32))
  with pytest.raises(ValueError, match=r'\[0, 64\)'):
    tok.decode(np.full((1, 8), 64))
  with pytest.raises(FileNotFoundError, match='config.json'):
    inference.Tokenizer(str(tmp_path))
  with pytest.raises(FileNotFoundError, match='nope.png'):
    inference.load_images([str(tmp_path / 'nope.png')], 28, 1)
  bad = tmp_path / 'bad.png'
  bad.write_bytes(b'not a png')
  with pytest.raises(ValueError, match='bad.png'):
    inference.load_images([str(bad)], 28, 1)
  with pytest.raises(checkpointing.CheckpointError, match='step 3'):
    inference.Tokenizer(workdir, step=3)


def test_command_line_tools(workdir, image_dir, tmp_path):
  def run(module, *args):
    proc = subprocess.run([sys.executable, '-m', module, '--workdir', workdir, *args],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout
  ids_path = str(tmp_path / 'ids.npz')
  run('sbt_jax.encode', '--images', str(image_dir), '--out', ids_path)
  with np.load(ids_path) as data:
    assert data['ids'].shape == (2, 8)
  run('sbt_jax.decode', '--ids', ids_path, '--out_dir', str(tmp_path / 'dec'))
  assert sorted(os.listdir(tmp_path / 'dec')) == ['00000.png', '00001.png']
  out = run('sbt_jax.reconstruct', '--images', str(image_dir / 'rgb.png'),
            '--out_dir', str(tmp_path / 'rec'))
  assert 'PSNR' in out
  assert os.path.exists(tmp_path / 'rec' / 'grid.png')
  with Image.open(tmp_path / 'rec' / 'rgb_recon.png') as img:
    assert img.size == (28, 28)

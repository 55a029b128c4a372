"""Data layer: IDX builder, preprocessing, grain loaders, iterator checkpoints, folders.

Runs on tiny IDX files written here (never the real Debian files). Train image i has
pixel[r, c] = 3 * i + r and label i % 10; test image i has 128 + 3 * i + r and label
3 * i % 10, so a batch can be mapped back to example ids.
"""
import os
import pathlib
import pickle

import numpy as np
import orbax.checkpoint as ocp
from PIL import Image
import pytest

from sbt_jax import config_defaults
from sbt_jax.data import fashion_mnist_deb
from sbt_jax.data import image_folder
from sbt_jax.data import pipeline
from sbt_jax.data import prepare
from tests import fakes

NUM_TRAIN, NUM_TEST = fakes.NUM_TRAIN, fakes.NUM_TEST


def _ids(images_BxHxWxC: np.ndarray, offset: int = 0) -> list[int]:
  """Example ids of preprocessed images (pixel [0, 0] = offset + 3 * id)."""
  base_B = np.rint((images_BxHxWxC[:, 0, 0, 0] + 1.0) * 127.5).astype(int)
  return [(b - offset) // 3 for b in base_B]


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  """A TFDS data_dir with fashion_mnist_deb built from the fake IDX files."""
  with pytest.MonkeyPatch.context() as mp:
    return fakes.build_fake_tfds(tmp_path_factory.mktemp('fmnist'), mp)


def _cfg(data_dir, **overrides):
  cfg = config_defaults.base_config().data
  cfg.data_dir = data_dir
  cfg.global_batch_size = 4
  cfg.eval_batch_size = 8
  for key, value in overrides.items():
    cfg[key] = value
  return cfg


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def _assert_same_batches(batches_a, batches_b):
  assert len(batches_a) == len(batches_b)
  for a, b in zip(batches_a, batches_b):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def test_builder_writes_idx_images_and_labels(data_dir):
  for split, n, offset, label_mult in (('train', NUM_TRAIN, 0, 1), ('test', NUM_TEST, 128, 3)):
    source = pipeline.make_source(_cfg(data_dir), split)
    assert len(source) == n == pipeline.num_examples(_cfg(data_dir), split)
    seen = set()
    for index in range(n):
      example = source[index]
      image_HxWx1 = example['image']
      assert image_HxWx1.shape == (28, 28, 1) and image_HxWx1.dtype == np.uint8
      i = (int(image_HxWx1[0, 0, 0]) - offset) // 3
      np.testing.assert_array_equal(image_HxWx1[:, :, 0], fakes.image_HxW(offset + 3 * i))
      assert example['label'] == i * label_mult % 10
      seen.add(i)
    assert seen == set(range(n))


def test_prepare_is_idempotent_and_reports_location(data_dir, capsys):
  record_file = next(pathlib.Path(data_dir, 'fashion_mnist_deb', '1.0.0').glob('*train*'))
  mtime = record_file.stat().st_mtime_ns
  prepare.main(['--dataset', 'fashion_mnist_deb', '--data_dir', data_dir])
  out = capsys.readouterr().out
  assert os.path.join(data_dir, 'fashion_mnist_deb', '1.0.0') in out
  assert f'train={NUM_TRAIN}' in out and f'test={NUM_TEST}' in out
  assert record_file.stat().st_mtime_ns == mtime  # Not rebuilt.


def test_builder_missing_idx_files_names_path_and_package(tmp_path, monkeypatch):
  monkeypatch.setenv(fashion_mnist_deb.ENV_DIR, str(tmp_path / 'nothing_here'))
  with pytest.raises(FileNotFoundError, match='apt-get install dataset-fashion-mnist') as e:
    prepare.prepare('fashion_mnist_deb', str(tmp_path / 'tfds'))
  assert str(tmp_path / 'nothing_here') in str(e.value)


def test_preprocess_scales_resizes_crops_and_converts_channels():
  image_HxWx1 = fakes.image_HxW(0)[:, :, None].copy()
  image_HxWx1[0, 0, 0], image_HxWx1[0, 1, 0] = 0, 255
  out = pipeline.preprocess({'image': image_HxWx1, 'label': 7}, 28, 1)
  assert out['image'].dtype == np.float32 and out['image'].shape == (28, 28, 1)
  assert out['image'][0, 0, 0] == -1.0 and out['image'][0, 1, 0] == 1.0
  np.testing.assert_allclose(out['image'][5, 3, 0], 5 / 127.5 - 1, atol=1e-6)
  assert out['label'].dtype == np.int32 and out['label'] == 7

  # Shorter side already 10: no resize, columns 10..19 of 30 are the center crop.
  cols_HxW = np.tile(np.arange(30, dtype=np.uint8) * 8, (10, 1))
  out = pipeline.preprocess({'image': cols_HxW, 'label': 0}, 10, 3)
  assert out['image'].shape == (10, 10, 3)
  np.testing.assert_allclose(out['image'][0, :, 0], np.arange(10, 20) * 8 / 127.5 - 1,
                             atol=1e-6)
  np.testing.assert_array_equal(out['image'][..., 0], out['image'][..., 2])  # 1 -> 3 repeats.

  # Pure red RGB 40x60 -> 16x16 gray luminance 0.299 * 255 ~ 76.
  red_HxWx3 = np.zeros((40, 60, 3), np.uint8)
  red_HxWx3[..., 0] = 255
  out = pipeline.preprocess({'image': red_HxWx3}, 16, 1)
  assert out['image'].shape == (16, 16, 1) and out['label'] == 0
  np.testing.assert_allclose(out['image'], 76 / 127.5 - 1, atol=1 / 127.5)

  out = pipeline.preprocess({'image': red_HxWx3}, 16, 3)
  assert out['image'].shape == (16, 16, 3)
  assert out['image'].min() >= -1.0 and out['image'].max() <= 1.0
  np.testing.assert_allclose(out['image'][..., 0], 1.0, atol=1e-6)
  np.testing.assert_allclose(out['image'][..., 1:], -1.0, atol=1e-6)


def test_train_loader_is_seeded_and_reshuffles_each_epoch(data_dir):
  cfg = _cfg(data_dir)
  first = _take(iter(pipeline.make_train_loader(cfg, seed=3)), 20)  # Two epochs.
  again = _take(iter(pipeline.make_train_loader(cfg, seed=3)), 20)
  other = _take(iter(pipeline.make_train_loader(cfg, seed=4)), 20)
  _assert_same_batches(first, again)
  for batch in first:
    assert batch['image'].shape == (4, 28, 28, 1) and batch['image'].dtype == np.float32
    assert batch['label'].shape == (4,) and batch['label'].dtype == np.int32
    np.testing.assert_array_equal(batch['label'], np.array(_ids(batch['image'])) % 10)
  order = [i for batch in first for i in _ids(batch['image'])]
  other_order = [i for batch in other for i in _ids(batch['image'])]
  assert sorted(order[:NUM_TRAIN]) == sorted(order[NUM_TRAIN:]) == list(range(NUM_TRAIN))
  assert order[:NUM_TRAIN] != order[NUM_TRAIN:]
  assert order != other_order
  assert order[:NUM_TRAIN] != list(range(NUM_TRAIN))


def test_train_loader_hosts_read_slices_of_the_one_host_batches(data_dir):
  cfg = _cfg(data_dir)
  one_host = _take(iter(pipeline.make_train_loader(cfg, seed=0)), NUM_TRAIN // 4 + 2)
  hosts = []
  for process_index in range(2):
    loader = pipeline.make_train_loader(cfg, seed=0, process_index=process_index,
                                        process_count=2)
    iterator = iter(loader)
    batches = _take(iterator, NUM_TRAIN // 4)  # One epoch of global batches.
    assert all(b['image'].shape == (2, 28, 28, 1) for b in batches)
    # A host's iterator checkpoint resumes its own slice.
    state = iterator.get_state()
    expected = _take(iterator, 2)
    resumed = iter(pipeline.make_train_loader(cfg, seed=0, process_index=process_index,
                                              process_count=2))
    resumed.set_state(state)
    _assert_same_batches(_take(resumed, 2), expected)
    hosts.append(batches + expected)
  # Host batches stacked in process order are the one-host run's global batches, so a run
  # on 2 hosts trains on exactly the data of a run on 1.
  for k, batch in enumerate(one_host):
    stacked = np.concatenate([hosts[0][k]['image'], hosts[1][k]['image']])
    np.testing.assert_array_equal(stacked, batch['image'])
  ids = [{i for b in host[:NUM_TRAIN // 4] for i in _ids(b['image'])} for host in hosts]
  assert not ids[0] & ids[1] and ids[0] | ids[1] == set(range(NUM_TRAIN))
  with pytest.raises(ValueError, match='global_batch_size=4 is not divisible'):
    pipeline.make_train_loader(cfg, seed=0, process_index=0, process_count=3)


def test_iterator_state_resumes_exact_batches(data_dir):
  loader = pipeline.make_train_loader(_cfg(data_dir), seed=1)
  iterator = iter(loader)
  _take(iterator, 8)
  state = iterator.get_state()
  expected = _take(iterator, 5)  # Crosses the epoch boundary at batch 10.
  fresh = iter(pipeline.make_train_loader(_cfg(data_dir), seed=1))
  fresh.set_state(state)
  _assert_same_batches(_take(fresh, 5), expected)


def test_orbax_checkpoint_manager_restores_iterator(data_dir, tmp_path):
  cfg = _cfg(data_dir)
  iterator = iter(pipeline.make_train_loader(cfg, seed=2))
  _take(iterator, 7)
  options = ocp.CheckpointManagerOptions(enable_async_checkpointing=True)
  with ocp.CheckpointManager(tmp_path / 'ckpt', options=options, item_names=('data_iter',),
                             item_handlers={'data_iter': pipeline.ITER_HANDLER}) as mngr:
    mngr.save(7, args=ocp.args.Composite(data_iter=pipeline.iter_save_args(iterator)))
    expected = _take(iterator, 6)  # Advancing after save must not change what was saved.
    mngr.wait_until_finished()
  with ocp.CheckpointManager(tmp_path / 'ckpt', item_names=('data_iter',),
                             item_handlers={'data_iter': pipeline.ITER_HANDLER}) as mngr:
    assert mngr.latest_step() == 7
    fresh = iter(pipeline.make_train_loader(cfg, seed=2))
    restored = mngr.restore(7, args=ocp.args.Composite(
        data_iter=pipeline.iter_restore_args(fresh)))
  assert restored.data_iter is fresh
  _assert_same_batches(_take(fresh, 6), expected)


def test_eval_loader_pads_last_batch_with_mask(data_dir):
  cfg = _cfg(data_dir)
  batches = list(pipeline.make_eval_loader(cfg, num_images=13))
  assert [b['image'].shape for b in batches] == [(8, 28, 28, 1)] * 2
  np.testing.assert_array_equal(batches[0]['mask'], np.ones(8, np.float32))
  np.testing.assert_array_equal(batches[1]['mask'], [1, 1, 1, 1, 1, 0, 0, 0])
  assert batches[1]['mask'].dtype == np.float32
  assert np.all(batches[1]['image'][5:] == 0)
  source = pipeline.make_source(cfg, 'test')
  ids = [i for b in batches for i in _ids(b['image'][:8], offset=128)][:13]
  assert ids == [(int(source[k]['image'][0, 0, 0]) - 128) // 3 for k in range(13)]
  _assert_same_batches(batches, list(pipeline.make_eval_loader(cfg, num_images=13)))

  everything = list(pipeline.make_eval_loader(cfg))
  assert len(everything) == 3 and everything[-1]['mask'].sum() == NUM_TEST - 16

  # Two hosts: same number of batches; host batches in process order = 1-host batches.
  hosts = [list(pipeline.make_eval_loader(cfg, num_images=13, process_index=p,
                                          process_count=2)) for p in range(2)]
  assert len(hosts[0]) == len(hosts[1]) == 2
  for k, batch in enumerate(batches):
    for key in ('image', 'label', 'mask'):
      np.testing.assert_array_equal(
          np.concatenate([hosts[0][k][key], hosts[1][k][key]]), batch[key])


def test_missing_dataset_or_split_gives_clear_error(data_dir, tmp_path):
  empty_dir = tmp_path / 'empty'
  with pytest.raises(FileNotFoundError) as e:
    pipeline.make_source(_cfg(str(empty_dir)), 'train')
  for word in ('fashion_mnist_deb', "'train'", str(empty_dir), 'python -m sbt_jax.data.prepare'):
    assert word in str(e.value)
  assert not (empty_dir / 'fashion_mnist_deb').exists()  # Nothing was built implicitly.

  with pytest.raises(ValueError, match="no split 'validation'"):
    pipeline.make_source(_cfg(data_dir), 'validation')
  with pytest.raises(ValueError, match="'no_such_dataset_xyz' .*split 'train'"):
    pipeline.make_source(_cfg(data_dir, name='no_such_dataset_xyz'), 'train')


def _write_png(path: pathlib.Path, array: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path)


def test_image_folder_source_and_loaders(tmp_path):
  folder = tmp_path / 'images'
  _write_png(folder / 'b' / 'gray.png', np.full((12, 8), 200, np.uint8))
  _write_png(folder / 'a.png', np.full((8, 8, 3), (255, 0, 0), np.uint8))
  _write_png(folder / 'c.PNG', np.full((8, 10, 4), (0, 0, 255, 255), np.uint8))
  (folder / 'notes.txt').write_text('not an image')
  source = image_folder.ImageFolderSource(str(folder))
  assert len(source) == 3
  assert source[0]['image'].shape == (8, 8, 3) and source[0]['label'] == 0  # a.png
  assert source[1]['image'].shape == (12, 8, 1) and source[1]['image'].max() == 200
  np.testing.assert_array_equal(source[2]['image'][0, 0], [0, 0, 255])

  cfg = _cfg('', name='folder', folder=str(folder), image_size=8, channels=3,
             global_batch_size=2, eval_batch_size=4)
  train_batch = next(iter(pipeline.make_train_loader(cfg, seed=0)))
  assert train_batch['image'].shape == (2, 8, 8, 3)
  eval_batch, = list(pipeline.make_eval_loader(cfg))
  np.testing.assert_array_equal(eval_batch['mask'], [1, 1, 1, 0])
  np.testing.assert_allclose(eval_batch['image'][0, 0, 0], [1, -1, -1], atol=1e-6)
  np.testing.assert_allclose(eval_batch['image'][1], 200 / 127.5 - 1, atol=1e-6)
  np.testing.assert_allclose(eval_batch['image'][2, 0, 0], [-1, -1, 1], atol=1e-6)


def test_image_folder_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    image_folder.ImageFolderSource(str(tmp_path / 'missing'))
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'empty' / 'readme.txt').write_text('no images here')
  with pytest.raises(FileNotFoundError, match='No images'):
    image_folder.ImageFolderSource(str(tmp_path / 'empty'))

  # strict: every unreadable file is named when the source is built, before any batch
  # (skipping instead: tests/test_image_folder.py).
  _write_png(tmp_path / 'mixed' / 'good.png', np.zeros((4, 4), np.uint8))
  (tmp_path / 'mixed' / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
  (tmp_path / 'mixed' / 'empty.jpg').write_bytes(b'')
  with pytest.raises(ValueError, match=r'2 of 3 image files .*broken.png.*empty.jpg \(empty'
                     ) as e:
    image_folder.ImageFolderSource(str(tmp_path / 'mixed'), strict=True)
  assert 'good.png' not in str(e.value)
  cfg = _cfg('', name='folder', folder=str(tmp_path / 'mixed'), eval_batch_size=2,
             strict_images=True)
  with pytest.raises(ValueError, match='broken.png'):
    pipeline.make_eval_loader(cfg)
  with pytest.raises(ValueError, match='broken.png'):
    image_folder.read_image(tmp_path / 'mixed' / 'broken.png')


def test_image_folder_source_keeps_or_rereads_decoded_images(tmp_path, monkeypatch):
  _write_png(tmp_path / 'a.png', np.full((4, 4), 7, np.uint8))
  _write_png(tmp_path / 'b.png', np.full((4, 6, 3), 9, np.uint8))
  source = image_folder.ImageFolderSource(str(tmp_path))
  decoded = []
  monkeypatch.setattr(image_folder, '_decode', lambda p: decoded.append(p) or np.zeros(1))
  # Rebuilt (train, eval, counting): checked once, kept images served without decoding.
  assert image_folder.ImageFolderSource(str(tmp_path))[1]['image'].shape == (4, 6, 3)
  assert not decoded
  assert pickle.loads(pickle.dumps(source))[0]['image'].shape == (1,)  # Workers re-read.
  decoded.clear()
  monkeypatch.setattr(image_folder, 'KEEP_DECODED_BYTES', 10)
  monkeypatch.setattr(image_folder, '_checked_folder', {})
  image_folder.ImageFolderSource(str(tmp_path))[0]
  assert len(decoded) == 3  # Two to check, then one access re-reads (too big to keep).

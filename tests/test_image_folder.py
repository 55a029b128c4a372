"""Folders of the user's own images: splits, class labels, crop/flip, bad files, resume.

Every image is a tiny PNG written here, filled with one value per file (a gradient along
the width where a crop must show), so a batch maps back to the files it came from.
"""
import json
import logging

import numpy as np
from PIL import Image
import pytest

from sbt_jax import config_defaults
from sbt_jax.data import image_folder
from sbt_jax.data import pipeline
from configs import generator_fmnist
from tests import fake_gcs


@pytest.fixture(autouse=True)
def _fresh_module_state(monkeypatch):
  monkeypatch.setattr(image_folder, '_checked_folder', {})
  monkeypatch.setattr(image_folder, '_warned', set())


def _png(path, value: int, shape=(8, 8)) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.full(shape, value, np.uint8)).save(path)


def _folder(root, layout: dict[str, int]):
  """{'train/cat/a.png': value, ...} -> root, with each file filled with value."""
  for name, value in layout.items():
    _png(root / name, value)
  return root


def _cfg(folder, **overrides):
  cfg = config_defaults.base_config().data
  cfg.name, cfg.folder, cfg.image_size, cfg.channels = 'folder', str(folder), 8, 1
  cfg.global_batch_size, cfg.eval_batch_size = 2, 4
  for key, value in overrides.items():
    cfg[key] = value
  return cfg


def _values(images_BxHxWxC) -> list[int]:
  """The fill value of each (uncropped) image of a batch."""
  return [int(v) for v in np.rint((images_BxHxWxC[:, 0, 0, 0] + 1) * 127.5)]


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def _assert_same_batches(batches_a, batches_b):
  for a, b in zip(batches_a, batches_b, strict=True):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def _eval_values(cfg) -> list[int]:
  batches = list(pipeline.make_eval_loader(cfg))
  return [v for b in batches for v, m in zip(_values(b['image']), b['mask']) if m]


def test_split_folders_and_eval_folder(tmp_path, caplog):
  root = _folder(tmp_path / 'data', {'train/a.png': 10, 'train/b.png': 20, 'val/c.png': 30,
                                     'test/d.png': 40})
  cfg = _cfg(root)  # eval_split='test' names test/.
  train = _take(iter(pipeline.make_train_loader(cfg, seed=0)), 3)
  assert {v for b in train for v in _values(b['image'])} == {10, 20}
  assert _eval_values(cfg) == [40]
  assert _eval_values(_cfg(root, eval_split='test_all')) == [30]  # Other names: val/ first.
  _folder(tmp_path / 'mine', {'e.png': 50, 'f.png': 60})
  assert _eval_values(_cfg(root, eval_folder=str(tmp_path / 'mine'))) == [50, 60]
  assert 'evaluation uses the training images' not in caplog.text

  # No train/ subfolder: every split reads it all (even its val/), as before, with a warning.
  flat = _folder(tmp_path / 'flat', {'a.png': 10, 'val/b.png': 20})
  with caplog.at_level(logging.WARNING):
    assert _eval_values(_cfg(flat)) == [10, 20]
    assert _eval_values(_cfg(flat)) == [10, 20]
  assert caplog.text.count('evaluation uses the training images') == 1
  assert len(pipeline.make_source(_cfg(flat), 'train')) == 2


def test_labels_from_class_folders_and_generator_num_classes(tmp_path):
  root = _folder(tmp_path / 'data', {'train/dog/a.png': 10, 'train/cat/b.png': 20,
                                     'train/cat/sub/c.png': 30, 'train/.hidden/x.png': 90,
                                     'val/dog/d.png': 40, 'val/cat/e.png': 50})
  (root / 'train' / 'notes.txt').write_text('not an image, not a class')
  cfg = _cfg(root, eval_split='val')
  assert image_folder.class_names(cfg) == ['cat', 'dog']
  label_of = {10: 1, 20: 0, 30: 0, 40: 1, 50: 0}
  for batch in _take(iter(pipeline.make_train_loader(cfg, seed=0)), 4):
    assert batch['label'].dtype == np.int32  # As TFDS labels.
    assert list(batch['label']) == [label_of[v] for v in _values(batch['image'])]
  eval_batch, = pipeline.make_eval_loader(cfg)
  assert _values(eval_batch['image'])[:2] == [50, 40]
  np.testing.assert_array_equal(eval_batch['label'][:2], [0, 1])
  image_folder.save_class_names(cfg, str(tmp_path / 'run'))
  assert json.loads((tmp_path / 'run' / 'classes.json').read_text()) == ['cat', 'dog']

  # Unlabelled images (directly in the split folder) keep label 0.
  flat = _folder(tmp_path / 'flat', {'a.png': 10, 'b/c.png': 20})
  assert image_folder.class_names(_cfg(flat)) == []
  assert [s['label'] for s in pipeline.make_source(_cfg(flat), 'train')] == [0, 0]
  # An eval class the train folder has not is named.
  _png(root / 'val' / 'bird' / 'f.png', 60)
  with pytest.raises(ValueError, match="class folder 'bird' the train folder has not"):
    pipeline.make_source(cfg, 'val')

  # A class-conditional generator needs one class per folder.
  config = generator_fmnist.get_config()
  config.generator.tokenizer_workdir = str(tmp_path / 'tokenizer')
  config.data.name, config.data.folder = 'folder', str(root)
  with pytest.raises(ValueError, match=r'generator.num_classes=10 but data.folder has 2 class '
                     r'folders \(cat, dog\); set generator.num_classes=2'):
    config_defaults.validate(config)
  config.generator.num_classes = 2
  config_defaults.validate(config)


def test_random_crop_flip_is_seeded_and_training_only(tmp_path):
  gradient_8x16 = np.tile(np.arange(16, dtype=np.uint8) * 16, (8, 1))
  (tmp_path / 'data').mkdir()
  Image.fromarray(gradient_8x16).save(tmp_path / 'data' / 'a.png')
  cfg = _cfg(tmp_path / 'data', random_crop_flip=True)

  def crops(seed):
    batches = _take(iter(pipeline.make_train_loader(cfg, seed=seed)), 8)
    return np.concatenate([b['image'][..., 0] for b in batches])  # [16, 8, 8]

  crops_0 = crops(0)
  np.testing.assert_array_equal(crops_0, crops(0))
  assert not np.array_equal(crops_0, crops(1))
  hosts = [next(iter(pipeline.make_train_loader(cfg, seed=0, process_index=h, process_count=2)))
           for h in range(2)]  # Two hosts crop their halves of a batch as one host does.
  np.testing.assert_array_equal(np.concatenate([b['image'][..., 0] for b in hosts]),
                                crops_0[:2])
  # Each is an 8-wide window of the image, mirrored or not; several windows, both ways.
  windows = {}
  for left in range(9):
    window = gradient_8x16[:, left:left + 8].astype(np.float32) / 127.5 - 1
    windows[(left, False)], windows[(left, True)] = window, window[:, ::-1]
  seen = [next(k for k, w in windows.items() if np.array_equal(w, crop)) for crop in crops_0]
  assert len({left for left, _ in seen}) >= 4 and {flip for _, flip in seen} == {False, True}

  center = pipeline.preprocess({'image': gradient_8x16}, 8, 1)['image']
  eval_batch, = pipeline.make_eval_loader(cfg)
  np.testing.assert_array_equal(eval_batch['image'][0], center)
  plain = next(iter(pipeline.make_train_loader(_cfg(tmp_path / 'data'), seed=0)))
  np.testing.assert_array_equal(plain['image'][0], center)


def test_corrupt_files_are_skipped_and_counted_or_strict(tmp_path, caplog, monkeypatch):
  root = _folder(tmp_path / 'data', {'a.png': 10, 'b.png': 20, 'c.png': 30})
  (root / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
  before = image_folder.num_skipped()
  with caplog.at_level(logging.WARNING):
    batches = _take(iter(pipeline.make_train_loader(_cfg(root), seed=0)), 3)
  assert {v for b in batches for v in _values(b['image'])} == {10, 20, 30}
  assert image_folder.num_skipped() == before + 1
  assert 'Skipping unreadable image' in caplog.text and 'broken.png' in caplog.text

  with pytest.raises(image_folder.ImageFilesError, match=r'1 of 4 image files .*broken.png'):
    pipeline.make_train_loader(_cfg(root, strict_images=True), seed=0)

  # A folder too large to keep decoded is read again on access: a file that went bad since
  # is replaced by the next one (and counted), or is an error naming it (strict).
  monkeypatch.setattr(image_folder, 'KEEP_DECODED_BYTES', 0)
  (root / 'broken.png').unlink()
  lenient = pipeline.make_source(_cfg(root), 'train')
  strict = pipeline.make_source(_cfg(root, strict_images=True), 'train')
  (root / 'b.png').write_bytes(b'')
  assert _values(pipeline.preprocess(lenient[1], 8, 1)['image'][None]) == [30]
  assert image_folder.num_skipped() == before + 2
  with pytest.raises(image_folder.ImageFilesError, match=r'b.png \(empty file\)'):
    strict[1]  # pylint: disable=pointless-statement


def test_each_folder_is_checked_once_and_large_ones_when_read(tmp_path, monkeypatch):
  decoded = []
  real = image_folder._decode
  monkeypatch.setattr(image_folder, '_decode', lambda p: decoded.append(str(p)) or real(p))
  root = _folder(tmp_path / 'data', {'train/a.png': 10, 'train/b.png': 20, 'val/c.png': 30})
  for _ in range(2):  # Train and eval sources rebuilt in turn: each folder decoded once.
    pipeline.make_source(_cfg(root), 'train')
    pipeline.make_source(_cfg(root), 'validation')
  assert sorted(decoded) == sorted(str(root / n) for n in ('train/a.png', 'train/b.png',
                                                           'val/c.png'))

  # More files than CHECK_MAX_FILES: nothing decoded up front; a bad file is skipped and
  # counted when read, or (strict) an error naming it then.
  monkeypatch.setattr(image_folder, 'CHECK_MAX_FILES', 2)
  (root / 'train' / 'broken.png').write_bytes(b'not a png')
  decoded.clear()
  lenient = pipeline.make_source(_cfg(root), 'train')
  strict = pipeline.make_source(_cfg(root, strict_images=True), 'train')
  assert decoded == [] and len(lenient) == 3
  before = image_folder.num_skipped()
  assert _values(pipeline.preprocess(lenient[2], 8, 1)['image'][None]) == [10]  # Wraps to a.
  assert image_folder.num_skipped() == before + 1
  with pytest.raises(image_folder.ImageFilesError, match=r'broken.png \(not an image file\)'):
    strict[2]  # pylint: disable=pointless-statement


def test_resume_is_bit_exact_with_labels_and_crops(tmp_path):
  root = tmp_path / 'data'
  for i, label in enumerate('aabbccd'):  # Gradients wider than high: the crops show.
    gradient_8x13 = np.tile(10 * i + np.arange(13, dtype=np.uint8), (8, 1))
    (root / 'train' / label).mkdir(parents=True, exist_ok=True)
    Image.fromarray(gradient_8x13).save(root / 'train' / label / f'{i}.png')
  cfg = _cfg(root, random_crop_flip=True)
  iterator = iter(pipeline.make_train_loader(cfg, seed=7))
  _take(iterator, 2)
  state = iterator.get_state()
  expected = _take(iterator, 5)  # Crosses the epoch boundary (7 images, batches of 2).
  fresh = iter(pipeline.make_train_loader(cfg, seed=7))
  fresh.set_state(state)
  _assert_same_batches(_take(fresh, 5), expected)
  assert {int(v) for b in expected for v in b['label']} == {0, 1, 2, 3}


def test_reads_a_gs_folder(tmp_path):
  with fake_gcs.mounted(tmp_path / 'gcs') as fs:
    _folder(tmp_path / 'gcs' / 'bucket' / 'data',
            {'train/x/a.png': 10, 'train/y/b.png': 20, 'val/y/c.png': 30})
    cfg = _cfg('gs://bucket/data', eval_split='val')
    assert image_folder.class_names(cfg) == ['x', 'y']
    batch = next(iter(pipeline.make_train_loader(cfg, seed=0)))
    assert sorted(zip(_values(batch['image']), batch['label'])) == [(10, 0), (20, 1)]
    assert _eval_values(cfg) == [30]
    assert 'gs://bucket/data/val/y/c.png' in fs.touched
    assert repr(pipeline.make_source(cfg, 'val')).startswith(
        "ImageFolderSource('gs://bucket/data/val'")


def test_class_folders_feed_a_class_conditional_generator(tmp_path, tiny_workdir):
  """A MaskGIT generator trained on a user folder with 2 class folders: its token cache
  holds the folder labels, and it trains with num_classes=2 (the tiny 28x28 tokenizer)."""
  from sbt_jax import paths  # pylint: disable=g-import-not-at-top
  from sbt_jax.trainers import loop  # pylint: disable=g-import-not-at-top
  layout = {f'{split}/{cls}/{i}.png': value
            for split, n in (('train', 8), ('val', 4))
            for cls, value in (('boots', 40), ('shirts', 210)) for i in range(n)}
  for name, value in layout.items():
    _png(tmp_path / 'photos' / name, value, shape=(28, 28))
  c = generator_fmnist.get_config('runlocal')
  c.data.name, c.data.folder = 'folder', str(tmp_path / 'photos')
  c.data.global_batch_size = 8
  c.generator.tokenizer_workdir, c.generator.num_classes = tiny_workdir, 2
  c.generator.use_token_cache, c.generator.attention_impl = True, 'xla'
  c.train.num_steps, c.train.grid_num_images = 2, 0
  workdir = tmp_path / 'gen'
  _, results = loop.train_and_evaluate(c, str(workdir))
  assert np.isfinite(results['eval/loss']) and results['eval/num_images'] == 8
  assert json.loads((workdir / 'classes.json').read_text()) == ['boots', 'shirts']
  caches = {p.split('/')[-1].split('_')[1]: paths.load_npz(p)
            for p in paths.listdir(str(workdir / 'token_cache'))}
  np.testing.assert_array_equal(np.sort(caches['train']['label']), [0] * 8 + [1] * 8)
  np.testing.assert_array_equal(np.sort(caches['test']['label']), [0] * 4 + [1] * 4)
  # Each class's images are one constant image: the same global ids within a class.
  for split in ('train', 'test'):
    ids, labels = caches[split]['ids'], caches[split]['label']
    for cls in (0, 1):
      assert len({tuple(row) for row in ids[labels == cls]}) == 1

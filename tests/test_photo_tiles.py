"""The natural-RGB dataset photo_tiles_deb, built from small fake photographs."""
import numpy as np
from PIL import Image
import pytest

from sbt_jax import config_defaults
from sbt_jax.data import photo_tiles_deb
from sbt_jax.data import pipeline
from sbt_jax.data import prepare

SCALES = (32, 64)  # A 32x48 photograph gives 1 tile at 32 and 2x3 at 64.


def _photo_HxWx3(label):
  rng = np.random.default_rng(label)
  return rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  photos = tmp_path_factory.mktemp('backgrounds')
  for label, (path, _) in enumerate(photo_tiles_deb.PHOTOS):
    (photos / path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_photo_HxWx3(label)).save(photos / path, format='PNG')  # lossless
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv(photo_tiles_deb.ENV_DIR, str(photos))
    mp.setattr(photo_tiles_deb, 'SCALES', SCALES)
    prepare.prepare('photo_tiles_deb', data_dir)
  return data_dir


def test_tiles_cut_every_scale_without_overlap():
  image_HxWx3 = _photo_HxWx3(0)
  cut = list(photo_tiles_deb.tiles(image_HxWx3, 32, SCALES))
  assert [(s, y, x) for s, y, x, _ in cut] == [(32, 0, 0)] + [
      (64, y, x) for y in (0, 32) for x in (0, 32, 64)]
  np.testing.assert_array_equal(cut[0][3], image_HxWx3[:, :32])  # scale 1: a plain crop
  assert all(t.shape == (32, 32, 3) and t.dtype == np.uint8 for *_, t in cut)


@pytest.mark.parametrize('split', ['train', 'test'])
def test_split_is_by_photograph(built, split):
  cfg = config_defaults.base_config().data
  cfg.name, cfg.data_dir = 'photo_tiles_deb', built
  source = pipeline.make_source(cfg, split)
  labels = [i for i, (_, s) in enumerate(photo_tiles_deb.PHOTOS) if s == split]
  assert len(source) == 7 * len(labels)
  seen = {}
  for index in range(len(source)):
    example = source[index]
    seen.setdefault(int(example['label']), []).append(example)
  assert sorted(seen) == labels  # no photograph is in both splits
  for label, examples in seen.items():
    expected = {(s, t.tobytes()) for s, _, _, t in
                photo_tiles_deb.tiles(_photo_HxWx3(label), 32, SCALES)}
    assert {(int(e['scale']), e['image'].tobytes()) for e in examples} == expected


def test_split_sizes_and_class_names():
  splits = [s for _, s in photo_tiles_deb.PHOTOS]
  assert (splits.count('train'), splits.count('test')) == (20, 6)
  assert len(set(photo_tiles_deb.class_names())) == len(photo_tiles_deb.PHOTOS)


def test_missing_photographs_name_the_packages(tmp_path, monkeypatch):
  monkeypatch.setenv(photo_tiles_deb.ENV_DIR, str(tmp_path / 'nothing_here'))
  with pytest.raises(FileNotFoundError, match='apt-get install mate-backgrounds') as e:
    prepare.prepare('photo_tiles_deb', str(tmp_path / 'tfds'))
  assert str(tmp_path / 'nothing_here') in str(e.value) and '26 of the 26' in str(e.value)
  assert not (tmp_path / 'tfds' / 'photo_tiles_deb' / '1.0.0').exists()


def test_selfboottok_photos_trains_and_stores_colour_ids(built, tmp_path):
  """configs/selfboottok_photos.py:runlocal end to end on the fake tiles: training, then the
  stored ids of both modes carry the 3 colour ids after the G global ids and decode."""
  from configs import selfboottok_photos  # pylint: disable=g-import-not-at-top
  from sbt_jax import inference  # pylint: disable=g-import-not-at-top
  from sbt_jax.trainers import loop  # pylint: disable=g-import-not-at-top
  c = selfboottok_photos.get_config('runlocal')
  c.data.data_dir = built
  c.train.eval_num_images = 32
  workdir = str(tmp_path / 'w')
  loop.train_and_evaluate(c, workdir)
  tok = inference.Tokenizer(workdir)
  source = pipeline.make_source(c.data, 'test')
  x = np.stack([source[i]['image'] for i in range(3)]).astype(np.float32) / 127.5 - 1
  g, l = c.model.num_global_tokens, c.model.num_local_tokens
  compress, generate = tok.encode(x, mode='compress'), tok.encode(x, mode='generate')
  assert compress.shape == (3, g + 3 + l) and generate.shape == (3, g + 3)
  expected = np.clip(np.round((x.mean(axis=(1, 2)) + 1) / 2 * 63), 0, 63)
  np.testing.assert_array_equal(compress[:, g:g + 3], expected)
  np.testing.assert_array_equal(generate, compress[:, :g + 3])
  assert tok.decode(compress).shape == tok.decode(generate).shape == x.shape
  bad = generate.copy()
  bad[0, g] = 64
  with pytest.raises(ValueError, match=r'colour ids must be in \[0, 64\)'):
    tok.decode(bad)

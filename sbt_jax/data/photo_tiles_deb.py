"""TFDS builder `photo_tiles_deb`: 32x32 RGB tiles cut from 26 photographs Debian packages.

No download: the photographs are installed by three Debian wallpaper packages,

  sudo apt-get install mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04

(or `bash launch/setup.sh --photos`), under /usr/share/backgrounds ($SBT_PHOTOS_DIR overrides
it). Each photograph is resized (Lanczos) so its shorter side is 64, 128, 256 and 512 pixels
and cut into non-overlapping 32x32 tiles: whole-scene views at 64, textures and edges at 512.
The split is by photograph: the tiles of 6 photographs (a bridge, a ladybird, mountains, a
fig, a storm, a room) are `test` and never seen in training; the other 20 give `train`.
Every tile's `label` is its photograph (26 class names), `scale` the shorter side it was cut
at. Licences: CC0, CC-BY, CC-BY-SA (lomiri) and GPL-2+ (MATE), listed per file in
/usr/share/doc/<package>/copyright; the dataset is built on the user's machine, never shipped.
"""
import os
import pathlib

from etils import epath
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

DEFAULT_DIR = '/usr/share/backgrounds'
ENV_DIR = 'SBT_PHOTOS_DIR'
PACKAGES = ('mate-backgrounds', 'lomiri-wallpapers-16.04', 'lomiri-wallpapers-20.04')
TILE = 32
SCALES = (64, 128, 256, 512)  # shorter side of the resized photograph, in pixels
# (path under the backgrounds folder, split). Photographs only: the packages' renders,
# gradients and logos are left out.
PHOTOS = (
    ('Picture_1A_by_freespace.jpg', 'train'),  # paint brushes
    ('seeding_by_Clements_Engelhardt.jpg', 'train'),  # dandelions at dusk
    ('aitzgorri_by_Aitzol_Berasategi.jpg', 'train'),  # autumn mountainside
    ('Kleiber_by_Lukas_Baubkus.jpg', 'train'),  # nuthatch on a trunk
    ('Dragonfly_by_Bolly.jpg', 'train'),  # leaves against the sky
    ('friends_by_Aitzol_Berasategi.jpg', 'train'),  # birds on a wooden fence
    ('sunset_by_Aitzol_Berasategi.jpg', 'train'),
    ('free_by_Peter_Nerlich.jpg', 'train'),  # bird among light bulbs
    ('life_by_Aitzol_Berasategi.jpg', 'train'),  # forest stream
    ('analogpattern_by_Peter_Nerlich.jpg', 'train'),  # defocused foliage
    ('mate/nature/Garden.jpg', 'train'),
    ('mate/nature/Dune.jpg', 'train'),
    ('mate/nature/Wood.jpg', 'train'),
    ('mate/nature/Aqua.jpg', 'train'),
    ('mate/nature/TwoWings.jpg', 'train'),
    ('mate/nature/GreenMeadow.jpg', 'train'),
    ('mate/nature/RainDrops.jpg', 'train'),
    ('mate/nature/Blinds.jpg', 'train'),
    ('mate/nature/FreshFlower.jpg', 'train'),
    ('mate/nature/YellowFlower.jpg', 'train'),
    ('Bridge_by_Sander_Klootwijk.jpg', 'test'),
    ('mate/nature/LadyBird.jpg', 'test'),
    ('picosdeeuropa_by_Aitzol_Berasategi.jpg', 'test'),  # mountains and a path
    ('Picture_0B_by_freespace.jpg', 'test'),  # fig on a plate
    ('mate/nature/Storm.jpg', 'test'),
    ('Wine_by_Jakkub_Mede.jpg', 'test'),  # room with a bottle
)


def source_dir() -> pathlib.Path:
  """Folder holding the photographs ($SBT_PHOTOS_DIR, else the Debian path)."""
  return pathlib.Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


def class_names() -> list[str]:
  """One label per photograph: its file name without folder and extension."""
  return [pathlib.Path(path).stem for path, _ in PHOTOS]


def check_sources(root: pathlib.Path) -> None:
  """FileNotFoundError naming every missing photograph and how to install them."""
  missing = [path for path, _ in PHOTOS if not (root / path).is_file()]
  if missing:
    raise FileNotFoundError(
        f'{len(missing)} of the {len(PHOTOS)} photographs of photo_tiles_deb are missing '
        f'under {root} (first: {missing[0]}). Install them with `sudo apt-get install '
        f'{" ".join(PACKAGES)}` (or `bash launch/setup.sh --photos`), or set ${ENV_DIR} to '
        'a folder holding the same files.')


def tiles(image_HxWx3: np.ndarray, tile: int, scales):
  """Yields (scale, y, x, tile x tile x 3 uint8): non-overlapping tiles of the photograph
  resized (Lanczos) so its shorter side is each of `scales`."""
  pil = Image.fromarray(image_HxWx3)
  for scale in scales:
    factor = scale / min(pil.width, pil.height)
    size = (max(tile, round(pil.width * factor)), max(tile, round(pil.height * factor)))
    resized_HxWx3 = np.asarray(pil.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))
    for y in range(0, resized_HxWx3.shape[0] - tile + 1, tile):
      for x in range(0, resized_HxWx3.shape[1] - tile + 1, tile):
        yield scale, y, x, resized_HxWx3[y:y + tile, x:x + tile]


class PhotoTilesDeb(tfds.core.GeneratorBasedBuilder):
  """32x32 RGB tiles of 26 photographs (20 train, 6 held-out test) from Debian packages."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Tiles at shorter sides 64/128/256/512 of 26 photographs.'}

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:  # See fashion_mnist_deb.FashionMnistDeb.code_path.
    return epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description='32x32 tiles of photographs installed by Debian wallpaper packages '
                    f'({", ".join(PACKAGES)}); split by photograph.',
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=(TILE, TILE, 3), dtype=np.uint8),
            'label': tfds.features.ClassLabel(names=class_names()),
            'scale': tfds.features.Scalar(dtype=np.int32),
        }),
        supervised_keys=('image', 'label'),
        license='Per photograph: CC0-1.0, CC-BY-4.0, CC-BY-SA-3.0/4.0 or GPL-2+ '
                '(see /usr/share/doc/<package>/copyright).',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    root = source_dir()
    check_sources(root)  # Fail before TFDS starts writing.
    return {split: self._generate_examples(root, split) for split in ('train', 'test')}

  def _generate_examples(self, root, split):
    for label, (path, photo_split) in enumerate(PHOTOS):
      if photo_split != split:
        continue
      with Image.open(root / path) as pil:
        image_HxWx3 = np.asarray(pil.convert('RGB'))
      for scale, y, x, tile_HxWx3 in tiles(image_HxWx3, TILE, SCALES):
        yield f'{label}_{scale}_{y}_{x}', {'image': tile_HxWx3, 'label': label,
                                           'scale': scale}

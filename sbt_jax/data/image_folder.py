"""Random-access source over a folder of the user's own images."""
import pathlib

import numpy as np
from PIL import Image

EXTENSIONS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp')
_GRAY_MODES = ('1', 'L', 'LA', 'I', 'I;16', 'F')


def list_images(folder: pathlib.Path) -> list[pathlib.Path]:
  """Image files under `folder`, recursive, sorted by path."""
  return sorted(p for p in pathlib.Path(folder).rglob('*')
                if p.suffix.lower() in EXTENSIONS and p.is_file())


def read_image(path) -> np.ndarray:
  """One image file -> uint8 HxWxC (C=1 for grayscale modes, else 3); ValueError names it."""
  try:
    with Image.open(path) as pil:
      pil = pil.convert('L' if pil.mode in _GRAY_MODES else 'RGB')  # Decodes fully.
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise ValueError(f'Cannot decode image file {path}: {e}') from e
  image_HxWxC = np.asarray(pil, dtype=np.uint8)
  return image_HxWxC[:, :, None] if image_HxWxC.ndim == 2 else image_HxWxC


class ImageFolderSource:
  """Images under `folder` (recursive, sorted by path) as {'image': HxWxC uint8, 'label': 0}.

  Grayscale files give C=1, everything else (palette, RGBA, CMYK, ...) C=3. Files are
  decoded on access, so this is cheap to build and safe to read from many threads.
  """

  def __init__(self, folder: str):
    self._root = pathlib.Path(folder).expanduser()
    if not self._root.is_dir():
      raise FileNotFoundError(f'Image folder {str(self._root)!r} does not exist '
                              "(set data.folder to a directory of images).")
    self._paths = list_images(self._root)
    if not self._paths:
      raise FileNotFoundError(f'No images ({"/".join(EXTENSIONS)}) found under '
                              f'{str(self._root)!r}.')

  def __len__(self) -> int:
    return len(self._paths)

  def __getitem__(self, index: int) -> dict:
    return {'image': read_image(self._paths[index]), 'label': 0}

  def __repr__(self) -> str:
    # Stable across runs: grain stores it in iterator checkpoints and compares on restore.
    return f'ImageFolderSource({str(self._root)!r}, num_images={len(self._paths)})'

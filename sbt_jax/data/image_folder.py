"""Random-access source over a folder of the user's own images, and up-front image checks.

`decode_images` decodes a list of files once, in threads, and reports every file that is
not a readable image (missing, empty, truncated, not an image whatever its name);
`check_decoded` turns that report into one error naming all of them. Both the folder source
and inference.load_images use them, so a bad file is found before any work starts.
"""
import concurrent.futures
import os
import pathlib
from typing import Callable

import numpy as np
from PIL import Image

EXTENSIONS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp')
_GRAY_MODES = ('1', 'L', 'LA', 'I', 'I;16', 'F')
# ImageFolderSource keeps a folder's decoded images in memory up to this size (the check
# decodes each once anyway); a larger folder is decoded again on every access.
KEEP_DECODED_BYTES = 512 << 20


def list_images(folder: pathlib.Path) -> list[pathlib.Path]:
  """Image files under `folder`, recursive, sorted by path."""
  return sorted(p for p in pathlib.Path(folder).rglob('*')
                if p.suffix.lower() in EXTENSIONS and p.is_file())


def _decode(path) -> np.ndarray:
  with Image.open(path) as pil:
    pil = pil.convert('L' if pil.mode in _GRAY_MODES else 'RGB')  # Decodes fully.
  image_HxWxC = np.asarray(pil, dtype=np.uint8)
  return image_HxWxC[:, :, None] if image_HxWxC.ndim == 2 else image_HxWxC


def read_image(path) -> np.ndarray:
  """One image file -> uint8 HxWxC (C=1 for grayscale modes, else 3); ValueError names it."""
  try:
    return _decode(path)
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise ValueError(f'Cannot decode image file {path}: {e}') from e


def _why_unreadable(path, e: Exception) -> str:
  if isinstance(e, FileNotFoundError):
    return 'no such file'
  if isinstance(e, IsADirectoryError):
    return 'a folder, not a file'
  if isinstance(e, Image.UnidentifiedImageError):
    try:
      if os.path.getsize(path) == 0:
        return 'empty file'
    except OSError:
      pass
    return 'not an image file'
  if isinstance(e, PermissionError):
    return 'permission denied'
  text = str(e).replace(str(path), '').strip(" '")
  return text if isinstance(e, OSError) else f'{type(e).__name__}: {text}'


def _try_decode(path, transform):
  try:
    image = _decode(path)
    return (transform(image) if transform else image), None
  except Exception as e:  # pylint: disable=broad-except  (any failure: the file is bad)
    return None, _why_unreadable(path, e)


class ImageFilesError(ValueError):
  """Files that are not readable images; `problems` lists (path, reason) for each."""

  def __init__(self, problems: list[tuple[str, str]], total: int):
    self.problems = problems
    listing = '; '.join(f'{path} ({reason})' for path, reason in problems)
    noun = 'file' if total == 1 else 'files'
    super().__init__(f'{len(problems)} of {total} image {noun} cannot be read: {listing}')


def decode_images(paths, transform: Callable[[np.ndarray], np.ndarray] | None = None, *,
                  keep_bytes: float = float('inf'), num_threads: int | None = None
                  ) -> tuple[list[np.ndarray] | None, list[tuple[str, str]]]:
  """Decodes every file fully, once (in threads): ([transform(uint8 HxWxC)] per file or
  None, [(path, reason)] per unreadable file). The arrays are dropped (None) if any file is
  bad or once they would take more than keep_bytes; every file is still checked."""
  paths = [str(p) for p in paths]
  num_threads = num_threads or min(8, os.cpu_count() or 1, max(1, len(paths)))
  images, problems, nbytes = [], [], 0
  with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
    for path, (image, reason) in zip(paths, pool.map(lambda p: _try_decode(p, transform),
                                                     paths)):
      if reason is not None:
        problems.append((path, reason))
        images = None
      elif images is not None:
        nbytes += np.asarray(image).nbytes
        if nbytes <= keep_bytes:
          images.append(image)
        else:
          images = None
  return images, problems


def check_decoded(problems: list[tuple[str, str]], total: int) -> None:
  """Raises ImageFilesError naming every unreadable file (does nothing if none)."""
  if problems:
    raise ImageFilesError(problems, total)


# (root, fingerprint of the files) -> decoded images (None: checked, too large to keep) of
# the folder checked last, so rebuilding the source (train, eval, counting) checks it once.
_checked_folder: dict = {}


def _check_folder(paths: list[pathlib.Path]) -> list[np.ndarray] | None:
  stats = [p.stat() for p in paths]
  key = tuple((str(p), s.st_size, s.st_mtime_ns) for p, s in zip(paths, stats))
  if key not in _checked_folder:
    images, problems = decode_images(paths, keep_bytes=KEEP_DECODED_BYTES)
    check_decoded(problems, len(paths))
    for image in images or ():
      image.setflags(write=False)  # Shared by every access (and thread).
    _checked_folder.clear()
    _checked_folder[key] = images
  return _checked_folder[key]


class ImageFolderSource:
  """Images under `folder` (recursive, sorted by path) as {'image': HxWxC uint8, 'label': 0}.

  Grayscale files give C=1, everything else (palette, RGBA, CMYK, ...) C=3. Building it
  decodes every file once (in threads) and raises ImageFilesError (a ValueError) naming
  every file that is not a readable image; the decoded images are kept if they take at
  most KEEP_DECODED_BYTES, else each access decodes its file again. Safe to read from many
  threads.
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
    self._images = _check_folder(self._paths)

  def __len__(self) -> int:
    return len(self._paths)

  def __getitem__(self, index: int) -> dict:
    if self._images is not None:
      return {'image': self._images[index], 'label': 0}
    return {'image': read_image(self._paths[index]), 'label': 0}

  def __getstate__(self) -> dict:
    # Pickled into grain worker processes: they decode on access rather than receive a copy.
    return {**self.__dict__, '_images': None}

  def __repr__(self) -> str:
    # Stable across runs: grain stores it in iterator checkpoints and compares on restore.
    return f'ImageFolderSource({str(self._root)!r}, num_images={len(self._paths)})'

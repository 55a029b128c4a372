"""Random-access sources over folders of the user's own images, and up-front image checks.

Layout of data.folder = DIR (every file access goes through etils epath, so DIR may be gs://):
  DIR/train/..., DIR/val/... or DIR/test/...   the train split reads DIR/train, the others
                                               DIR/<split>, else DIR/val, else DIR/test;
  DIR/...  (no train/ subfolder)               every split reads DIR (evaluation then sees the
                                               training images: logged once).
data.eval_folder, if set, is the folder of every split but the train one. Images in class
folders of the train folder (train/<class>/**) are labelled with the index of <class> in the
sorted class folder names (`class_names`), in every split; images directly in a split folder
get label 0.

`decode_images` decodes a list of files once, in threads, and reports every file that is
not a readable image (missing, empty, truncated, not an image whatever its name);
`check_decoded` turns that report into one error naming all of them. A folder source checks
its files when built (up to CHECK_MAX_FILES files; a larger folder is checked as it is read):
with strict=True (data.strict_images) a bad file is an ImageFilesError naming it, else it is
skipped, logged (named the first NAMED_SKIPS times) and counted (`num_skipped`); so is a file
that fails later, when it is read again.
"""
import concurrent.futures
import os
import threading
from typing import Callable, Sequence

from absl import logging
from etils import epath
import numpy as np
from PIL import Image

from sbt_jax import paths

EXTENSIONS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp')
_GRAY_MODES = ('1', 'L', 'LA', 'I', 'I;16', 'F')
# ImageFolderSource keeps a folder's decoded images in memory up to this size (the check
# decodes each once anyway); a larger folder is decoded again on every access.
KEEP_DECODED_BYTES = 512 << 20
# A folder with more files than this is not checked up front (decoding ImageNet's 1.28M
# files at every start would take hours): each file is checked when it is read.
CHECK_MAX_FILES = 100_000
# Skipped files named in the log, one warning each; after that, only the running count.
NAMED_SKIPS = 10


def _is_image_name(name: str) -> bool:
  return name.lower().endswith(EXTENSIONS)


def list_images(folder) -> list[epath.Path]:
  """Image files under `folder`, recursive (hidden folders skipped), sorted by path."""
  found = []
  for root, dirs, files in epath.Path(folder).walk():
    dirs[:] = [d for d in dirs if not d.startswith('.')]
    found += [root / f for f in files if _is_image_name(f)]
  return sorted(found)


def _decode(path) -> np.ndarray:
  with epath.Path(path).open('rb') as f, Image.open(f) as pil:
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
      if epath.Path(path).stat().length == 0:
        return 'empty file'
    except OSError:
      pass
    return 'not an image file'
  if isinstance(e, PermissionError):
    return 'permission denied'
  text = str(e).replace(str(path), '').strip(" '")
  return text if isinstance(e, OSError) else f'{type(e).__name__}: {text}'


def _try_decode(path, transform=None):
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


def _decode_files(files: list[str], transform, keep_bytes: float, num_threads: int | None):
  """([image, or None if unreadable, per path] or None once they would take more than
  keep_bytes, [(path, reason)] per unreadable file). Every file is decoded, in threads."""
  num_threads = num_threads or min(8, os.cpu_count() or 1, max(1, len(files)))
  images, problems, nbytes = [], [], 0
  with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
    for path, (image, reason) in zip(files, pool.map(lambda p: _try_decode(p, transform),
                                                     files)):
      if reason is not None:
        problems.append((path, reason))
      if images is not None:
        nbytes += 0 if image is None else np.asarray(image).nbytes
        if nbytes <= keep_bytes:
          images.append(image)
        else:
          images = None
  return images, problems


def decode_images(files, transform: Callable[[np.ndarray], np.ndarray] | None = None, *,
                  keep_bytes: float = float('inf'), num_threads: int | None = None
                  ) -> tuple[list[np.ndarray] | None, list[tuple[str, str]]]:
  """Decodes every file fully, once (in threads): ([transform(uint8 HxWxC)] per file or
  None, [(path, reason)] per unreadable file). The arrays are dropped (None) if any file is
  bad or once they would take more than keep_bytes; every file is still checked."""
  images, problems = _decode_files([str(p) for p in files], transform, keep_bytes,
                                   num_threads)
  return (None if problems else images), problems


def check_decoded(problems: list[tuple[str, str]], total: int) -> None:
  """Raises ImageFilesError naming every unreadable file (does nothing if none)."""
  if problems:
    raise ImageFilesError(problems, total)


_lock = threading.Lock()
_num_skipped = 0


def num_skipped() -> int:
  """Unreadable image files skipped so far in this process (non-strict folder sources)."""
  return _num_skipped


def _skip(problems: list[tuple[str, str]]) -> None:
  """Logs and counts skipped files: each named up to NAMED_SKIPS, then the running count."""
  global _num_skipped
  with _lock:
    for path, reason in problems:
      _num_skipped += 1
      if _num_skipped <= NAMED_SKIPS:
        logging.warning('Skipping unreadable image %s (%s): %d skipped so far '
                        '(data.strict_images=True stops instead).', path, reason,
                        _num_skipped)
    if _num_skipped > NAMED_SKIPS:
      logging.log_every_n_seconds(logging.WARNING, '%d unreadable images skipped so far.',
                                  60, _num_skipped)


_warned: set[str] = set()


def _warn_once(message: str) -> None:
  if message not in _warned:
    _warned.add(message)
    logging.warning(message)


# Fingerprint of a folder's files -> (decoded images or None, problems), for the last
# _CHECKED_FOLDERS folders checked, so rebuilding a source (train, eval, counting) checks
# each folder once per process.
_checked_folder: dict = {}
_CHECKED_FOLDERS = 4


def _check_folder(files: list[epath.Path], strict: bool):
  """(readable files, their decoded images or None if too large to keep); a bad file is an
  ImageFilesError (strict) or skipped, logged and counted (once per change of the files).
  A folder of more than CHECK_MAX_FILES files is returned unchecked (checked when read)."""
  if len(files) > CHECK_MAX_FILES:
    _warn_once(f'{len(files)} image files under {str(files[0].parent)!r} (more than '
               f'{CHECK_MAX_FILES}): each is checked when read, not up front.')
    return files, None
  stats = [p.stat() for p in files]
  key = tuple((str(p), s.length, s.mtime) for p, s in zip(files, stats))
  if key not in _checked_folder:
    images, problems = _decode_files([str(p) for p in files], None, KEEP_DECODED_BYTES, None)
    for image in images or ():
      if image is not None:
        image.setflags(write=False)  # Shared by every access (and thread).
    if problems and not strict:
      _skip(problems)
    while len(_checked_folder) >= _CHECKED_FOLDERS:
      del _checked_folder[next(iter(_checked_folder))]  # The oldest.
    _checked_folder[key] = images, problems
  images, problems = _checked_folder[key]
  if problems and (strict or len(problems) == len(files)):
    raise ImageFilesError(problems, len(files))
  bad = {path for path, _ in problems}
  keep = [i for i, p in enumerate(files) if str(p) not in bad]
  return [files[i] for i in keep], None if images is None else [images[i] for i in keep]


def _require_dir(folder: epath.Path, field: str) -> None:
  if not folder.is_dir():
    raise FileNotFoundError(f'Image folder {str(folder)!r} does not exist '
                            f'(set {field} to a directory of images).')


def train_folder(data_cfg) -> epath.Path:
  """data.folder/train if there is one, else data.folder."""
  root = epath.Path(data_cfg.folder).expanduser()
  return root / 'train' if (root / 'train').is_dir() else root


def split_folder(data_cfg, split: str) -> epath.Path:
  """The folder `split` reads (module docstring)."""
  if split == data_cfg.train_split:
    return train_folder(data_cfg)
  if data_cfg.eval_folder:
    return epath.Path(data_cfg.eval_folder).expanduser()
  root = epath.Path(data_cfg.folder).expanduser()
  if (root / 'train').is_dir():
    for name in (split, 'val', 'test'):
      if (root / name).is_dir():
        return root / name
  _warn_once(f'Image folder {str(root)!r} has no val/ or test/ next to a train/ folder and '
             'data.eval_folder is not set: evaluation uses the training images.')
  return train_folder(data_cfg)


def class_names(data_cfg) -> list[str]:
  """Sorted class folder names of the train folder; [] if it holds images directly (then
  every image has label 0). Labels of every split are indices into this list."""
  folder = train_folder(data_cfg)
  _require_dir(folder, 'data.folder')
  _, dirs, files = next(folder.walk())  # One listing of the top level.
  if any(_is_image_name(f) for f in files):
    return []
  return sorted(d for d in dirs if not d.startswith('.'))


def save_class_names(data_cfg, workdir: str) -> None:
  """Writes <workdir>/classes.json: the class names, label i being names[i]."""
  paths.write_json(paths.join(workdir, 'classes.json'), class_names(data_cfg))


def split_source(data_cfg, split: str) -> 'ImageFolderSource':
  """The source of `split` of data.folder (module docstring)."""
  return ImageFolderSource(split_folder(data_cfg, split), classes=class_names(data_cfg),
                           strict=data_cfg.strict_images)


class ImageFolderSource:
  """Images under `folder` (recursive, sorted by path) as {'image': HxWxC uint8, 'label'}.

  Grayscale files give C=1, everything else (palette, RGBA, CMYK, ...) C=3. The label is
  the index in `classes` of the image's top folder under `folder` (0 for an image directly
  in `folder`, or if `classes` is empty). Building it decodes every file once (in threads;
  not for more than CHECK_MAX_FILES files): a bad file is an ImageFilesError (a ValueError)
  naming it with strict=True, else it is skipped (module docstring). The decoded images
  are kept if they take at most KEEP_DECODED_BYTES, else each access decodes its file
  again; a file that fails then is replaced by the next readable one. Safe to read from
  many threads.
  """

  def __init__(self, folder, *, classes: Sequence[str] = (), strict: bool = False):
    self._root, self._strict = epath.Path(folder).expanduser(), strict
    _require_dir(self._root, 'data.folder or data.eval_folder')
    files = list_images(self._root)
    if not files:
      raise FileNotFoundError(f'No images ({"/".join(EXTENSIONS)}) found under '
                              f'{str(self._root)!r}.')
    self._num_classes = len(classes)
    index_of = {name: i for i, name in enumerate(classes)}
    labels = {p: self._label(p, index_of) for p in files}
    self._paths, self._images = _check_folder(files, strict)
    self._labels = [labels[p] for p in self._paths]

  def _label(self, path: epath.Path, index_of: dict) -> int:
    parts = path.relative_to(self._root).parts
    if not index_of or len(parts) == 1:
      if index_of:
        _warn_once(f'Images directly in {str(self._root)!r} (not in a class folder) get '
                   'label 0.')
      return 0
    if parts[0] not in index_of:
      raise ValueError(f'Image folder {str(self._root)!r} has a class folder {parts[0]!r} '
                       f'the train folder has not (its classes: {sorted(index_of)}).')
    return index_of[parts[0]]

  def __len__(self) -> int:
    return len(self._paths)

  def __getitem__(self, index: int) -> dict:
    if self._images is not None:
      return {'image': self._images[index], 'label': self._labels[index]}
    for i in range(index, index + len(self._paths)):
      i %= len(self._paths)  # A bad file is replaced by the next readable one.
      image, reason = _try_decode(self._paths[i])
      if reason is None:
        return {'image': image, 'label': self._labels[i]}
      if self._strict:
        raise ImageFilesError([(str(self._paths[i]), reason)], len(self._paths))
      _skip([(str(self._paths[i]), reason)])
    raise ImageFilesError([(str(self._root), 'no readable image left')], len(self._paths))

  def __getstate__(self) -> dict:
    # Pickled into grain worker processes: they decode on access rather than receive a copy.
    return {**self.__dict__, '_images': None}

  def __repr__(self) -> str:
    # Stable across runs: grain stores it in iterator checkpoints and compares on restore.
    classes = f', num_classes={self._num_classes}' if self._num_classes else ''
    return f'ImageFolderSource({str(self._root)!r}, num_images={len(self._paths)}{classes})'

"""Every path a user gives (workdirs, token caches, records, reports, samples, weights,
image folders), local or a URL such as gs://bucket/run, goes through this module: it is
etils epath underneath, so a TPU pod reads and writes Cloud Storage the same way a laptop
reads its disk. No other file in sbt_jax calls open()/os.path on a user's path
(tests/test_paths.py greps for it).

Paths are passed around as strings (configs and JSON records hold them); local paths are
made absolute by `resolve`, URLs are kept as given. Writes go to a temporary name first and
are renamed over the target, so a failure never loses a file that was already there.
"""
import io
import json
from typing import Any

from etils import epath
import numpy as np


def is_url(path: str) -> bool:
  return '://' in str(path)


def resolve(path: str) -> str:
  """Absolute local path (~ expanded), or a URL as given."""
  path = str(path)
  return path if is_url(path) else str(epath.Path(path).expanduser().resolve())


def join(base: str, *parts: str) -> str:
  return str(epath.Path(base).joinpath(*parts))


def parent(path: str) -> str:
  return str(epath.Path(resolve(path)).parent)


def name(path: str) -> str:
  """The last component ('b.png' of 'gs://a/b.png'), ignoring a trailing slash."""
  return epath.Path(str(path).rstrip('/') or '/').name


def stem(path: str) -> str:
  return epath.Path(path).stem


def exists(path: str) -> bool:
  return epath.Path(path).exists()


def isfile(path: str) -> bool:
  p = epath.Path(path)
  return p.exists() and not p.is_dir()


def isdir(path: str) -> bool:
  return epath.Path(path).is_dir()


def makedirs(path: str) -> None:
  epath.Path(path).mkdir(parents=True, exist_ok=True)


def listdir(path: str) -> list[str]:
  """Full paths of the entries of folder `path`, sorted."""
  return sorted(str(p) for p in epath.Path(path).iterdir())


def open_file(path: str, mode: str = 'r'):
  """A file object (a context manager) for reading or appending."""
  return epath.Path(path).open(mode)


def read_bytes(path: str) -> bytes:
  return epath.Path(path).read_bytes()


def read_text(path: str) -> str:
  return epath.Path(path).read_text()


def write_bytes(path: str, data: bytes) -> None:
  """`data` written to a temporary file beside `path`, then renamed over it; the folder is
  created."""
  target = epath.Path(path)
  target.parent.mkdir(parents=True, exist_ok=True)
  tmp = target.parent / (target.name + '.tmp')
  try:
    tmp.write_bytes(data)
    tmp.replace(target)
  finally:
    if tmp.exists():
      tmp.unlink()


def write_text(path: str, text: str) -> None:
  write_bytes(path, text.encode())


def read_json(path: str) -> Any:
  """The JSON in `path`; ValueError naming the file when it is not JSON."""
  try:
    return json.loads(read_text(path))
  except json.JSONDecodeError as e:
    raise ValueError(f'{path} is not valid JSON ({e}).') from e


def write_json(path: str, obj: Any, indent: int | None = None) -> None:
  write_text(path, json.dumps(obj, indent=indent))


def save_npz(path: str, **arrays) -> None:
  """np.savez of `arrays` to `path` (written whole, then renamed into place)."""
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  write_bytes(path, buffer.getvalue())


def npz_arrays(data: bytes, allow_pickle: bool = False) -> dict[str, np.ndarray]:
  """Every array of an .npz file's bytes."""
  with np.load(io.BytesIO(data), allow_pickle=allow_pickle) as npz:
    return {k: npz[k] for k in npz.files}


def load_npz(path: str, allow_pickle: bool = False) -> dict[str, np.ndarray]:
  """Every array of the .npz at `path` (read into memory)."""
  return npz_arrays(read_bytes(path), allow_pickle)


def load_npy_or_npz(path: str):
  """np.load of the file's bytes: an array (.npy) or an NpzFile (.npz; a context manager)."""
  return np.load(io.BytesIO(read_bytes(path)))

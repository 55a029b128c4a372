"""PyTorch checkpoint files without torch: read and write a state_dict (.pth / .bin, zip
or legacy pickle format) as numpy arrays, map Inception's torch names to Flax names, and
read + check a pretrained network's weights file (.pth or converted .npz) for a Flax model
(`read_weights`, `checked_params`: Inception, ConvNeXt).

Only plain tensors and the pickle opcodes a state_dict needs are accepted (no arbitrary
globals: a malicious file cannot run code).
"""
import collections
import io
import pickle
import struct
import zipfile

import numpy as np

from sbt_jax import paths

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'BFloat16Storage': 'bfloat16', 'LongStorage': np.int64, 'IntStorage': np.int32,
    'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8,
    'BoolStorage': np.bool_,
}
_DTYPE_STORAGES = {np.dtype(v): k for k, v in _STORAGE_DTYPES.items() if v != 'bfloat16'}


class TorchFormatError(ValueError):
  """The file is not a readable torch state dict."""


class _StorageType:
  def __init__(self, name: str):
    self.name, self.dtype = name, _STORAGE_DTYPES[name]

  @property
  def itemsize(self) -> int:
    return 2 if self.dtype == 'bfloat16' else np.dtype(self.dtype).itemsize


class _StorageRef:
  def __init__(self, key: str, storage_type: _StorageType, offset: int = 0):
    self.key, self.type, self.offset = key, storage_type, offset


class _LazyTensor:
  def __init__(self, storage: _StorageRef, offset: int, size, stride):
    self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), stride


def _rebuild_tensor(storage, storage_offset, size, stride, *unused_args):
  return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused_args):
  return data


class _Unpickler(pickle.Unpickler):
  """Maps torch's tensor globals to lazy stand-ins; refuses every other global."""

  def __init__(self, file, legacy: bool):
    super().__init__(file)
    self._legacy = legacy
    self.storage_refs = []

  def find_class(self, module, name):
    if (module, name) == ('collections', 'OrderedDict'):
      return collections.OrderedDict
    if module == 'torch._utils' and name in ('_rebuild_tensor_v2', '_rebuild_tensor'):
      return _rebuild_tensor
    if (module, name) == ('torch._utils', '_rebuild_parameter'):
      return _rebuild_parameter
    if module == 'torch' and name in _STORAGE_DTYPES:
      return _StorageType(name)
    raise TorchFormatError(f'refusing to load the global {module}.{name} (only tensors and '
                           'state dicts are read, no code runs)')

  def persistent_load(self, pid):
    if not isinstance(pid, tuple) or pid[0] != 'storage':
      raise pickle.UnpicklingError(f'unknown persistent id {pid!r}')
    storage_type, key = pid[1], str(pid[2])
    offset = 0
    if self._legacy and len(pid) > 5 and pid[5] is not None:  # a view into a root storage
      _, offset, _ = pid[5]
    self.storage_refs.append(_StorageRef(key, storage_type, offset))
    return self.storage_refs[-1]


def _to_numpy(t: _LazyTensor, raw: bytes) -> np.ndarray:
  stype = t.storage.type
  dtype = np.uint16 if stype.dtype == 'bfloat16' else np.dtype(stype.dtype)
  flat = np.frombuffer(raw, dtype=dtype)
  start = t.storage.offset + t.offset
  if not t.size:
    arr = flat[start:start + 1].reshape(())
  else:
    needed = start + 1 + sum((n - 1) * s for n, s in zip(t.size, t.stride))
    if min(t.size) > 0 and needed > flat.size:
      raise TorchFormatError(f'storage {t.storage.key} holds {flat.size} elements, a tensor '
                             f'of size {t.size} needs {needed}')
    arr = np.lib.stride_tricks.as_strided(
        flat[start:], t.size, [s * flat.itemsize for s in t.stride], writeable=False)
  arr = np.array(arr)
  if stype.dtype == 'bfloat16':
    arr = (arr.astype(np.uint32) << 16).view(np.float32)
  return arr


def _materialize(obj, storages: dict) -> dict:
  if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
    obj = obj['state_dict']
  if not isinstance(obj, dict):
    raise TorchFormatError(f'holds a {type(obj).__name__}, not a state dict')
  out = {}
  for name, t in obj.items():
    if isinstance(t, _LazyTensor):
      if t.storage.key not in storages:
        raise TorchFormatError(f'tensor {name!r} refers to missing storage {t.storage.key}')
      out[str(name)] = _to_numpy(t, storages[t.storage.key])
  return out


def _read_zip(file) -> dict:
  with zipfile.ZipFile(file) as zf:
    pkl = [n for n in zf.namelist() if n.endswith('data.pkl')]
    if not pkl:
      raise TorchFormatError('is a zip archive without data.pkl (not a torch file)')
    prefix = pkl[0][:-len('data.pkl')]
    obj = _Unpickler(io.BytesIO(zf.read(pkl[0])), legacy=False).load()
    names = set(zf.namelist())
    storages = {n[len(prefix) + 5:]: zf.read(n) for n in names
                if n.startswith(prefix + 'data/')}
  return _materialize(obj, storages)


def _read_legacy(f) -> dict:
  if _Unpickler(f, legacy=True).load() != _LEGACY_MAGIC:
    raise TorchFormatError('is a pickle but not a torch file (wrong magic number)')
  if _Unpickler(f, legacy=True).load() != _LEGACY_PROTOCOL:
    raise TorchFormatError('has an unknown torch legacy protocol version')
  _Unpickler(f, legacy=True).load()  # sys_info
  unpickler = _Unpickler(f, legacy=True)
  obj = unpickler.load()
  keys = _Unpickler(f, legacy=True).load()
  itemsize = {r.key: r.type.itemsize for r in unpickler.storage_refs}
  storages = {}
  for key in keys:
    header = f.read(8)
    if len(header) < 8:
      raise TorchFormatError(f'ends inside storage {key} (truncated)')
    numel = struct.unpack('<q', header)[0]
    raw = f.read(numel * itemsize.get(key, 1))
    if len(raw) < numel * itemsize.get(key, 1):
      raise TorchFormatError(f'ends inside storage {key} (truncated)')
    storages[str(key)] = raw
  return _materialize(obj, storages)


def read_torch(path: str, data: bytes | None = None) -> dict[str, np.ndarray]:
  """A torch .pth state dict -> {name: numpy array}; TorchFormatError names the file.

  `data`: the file's bytes when the caller has read them already (the file is read once).
  """
  try:
    if data is None:
      data = paths.read_bytes(path)
    if zipfile.is_zipfile(io.BytesIO(data)):
      return _read_zip(io.BytesIO(data))
    return _read_legacy(io.BytesIO(data))
  except TorchFormatError as e:
    raise TorchFormatError(f'{path}: {e}') from None
  except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, ValueError,
          KeyError, TypeError, IndexError, AttributeError) as e:
    raise TorchFormatError(f'{path} is not a readable torch state dict (truncated or another '
                           f'format): {type(e).__name__}: {e}') from None


# --- writing (the inverse; pickle protocol 2 emitted by hand, so torch is not needed) ---

def _op_str(s: str) -> bytes:
  b = s.encode('utf-8')
  return b'X' + struct.pack('<I', len(b)) + b


def _op_int(i: int) -> bytes:
  return b'J' + struct.pack('<i', i)


def _op_tuple(items: list[bytes]) -> bytes:
  return b'(' + b''.join(items) + b't'


def _state_dict_pickle(arrays: list[np.ndarray], names: list[str], legacy: bool) -> bytes:
  out = [b'\x80\x02', b'ccollections\nOrderedDict\n)R', b'(']
  for i, (name, a) in enumerate(zip(names, arrays)):
    storage = _DTYPE_STORAGES[a.dtype]
    pid = [_op_str('storage'), f'ctorch\n{storage}\n'.encode(), _op_str(str(i)),
           _op_str('cpu'), _op_int(a.size)] + ([b'N'] if legacy else [])
    strides = [s // a.itemsize for s in a.strides] if a.size else [1] * a.ndim
    args = [_op_tuple(pid) + b'Q', _op_int(0), _op_tuple([_op_int(n) for n in a.shape]),
            _op_tuple([_op_int(s) for s in strides]), b'\x89',
            b'ccollections\nOrderedDict\n)R']
    out += [_op_str(name), b'ctorch._utils\n_rebuild_tensor_v2\n', _op_tuple(args), b'R']
  out += [b'u', b'.']
  return b''.join(out)


def write_torch(path: str, state_dict: dict, legacy: bool = False) -> None:
  """Writes {name: array} as a torch .pth (zip format, or legacy) that torch.load reads."""
  names = list(state_dict)
  arrays = [np.ascontiguousarray(state_dict[n]) for n in names]
  data_pkl = _state_dict_pickle(arrays, names, legacy)
  f = io.BytesIO()
  if legacy:
    for header in (_LEGACY_MAGIC, _LEGACY_PROTOCOL,
                   {'protocol_version': _LEGACY_PROTOCOL, 'little_endian': True,
                    'type_sizes': {'short': 2, 'int': 4, 'long': 4}}):
      pickle.dump(header, f, protocol=2)
    f.write(data_pkl)
    pickle.dump([str(i) for i in range(len(arrays))], f, protocol=2)
    for a in arrays:
      f.write(struct.pack('<q', a.size) + a.astype(a.dtype.newbyteorder('<')).tobytes())
  else:
    root = paths.stem(path) or 'archive'
    with zipfile.ZipFile(f, 'w', zipfile.ZIP_STORED) as zf:
      zf.writestr(f'{root}/data.pkl', data_pkl)
      zf.writestr(f'{root}/byteorder', 'little')
      for i, a in enumerate(arrays):
        zf.writestr(f'{root}/data/{i}', a.astype(a.dtype.newbyteorder('<')).tobytes())
      zf.writestr(f'{root}/version', '3\n')
  paths.write_bytes(path, f.getvalue())


# --- pytorch-fid names <-> sbt_jax's Flax names ---

_BN = {'weight': 'scale', 'bias': 'bias', 'running_mean': 'mean', 'running_var': 'var'}
_BN_INV = {v: k for k, v in _BN.items()}


def torch_to_flax(state_dict: dict) -> dict[str, np.ndarray]:
  """pytorch-fid state dict -> {'Mixed_5b/branch1x1/conv/kernel': HWIO array, ...}.

  Skips `num_batches_tracked` and `AuxLogits.*`; other names pass through ('.' -> '/') so
  a mismatch is reported by name when the params are checked.
  """
  flat = {}
  for name, value in state_dict.items():
    parts = name.removeprefix('module.').split('.')
    if parts[-1] == 'num_batches_tracked' or parts[0] == 'AuxLogits':
      continue
    value = np.asarray(value)
    if len(parts) >= 2 and parts[-2] == 'conv' and parts[-1] == 'weight' and value.ndim == 4:
      parts[-1], value = 'kernel', value.transpose(2, 3, 1, 0)
    elif len(parts) >= 2 and parts[-2] == 'bn' and parts[-1] in _BN:
      parts[-1] = _BN[parts[-1]]
    elif parts == ['fc', 'weight'] and value.ndim == 2:
      parts, value = ['fc', 'kernel'], value.T
    flat['/'.join(parts)] = value
  return flat


def flax_to_torch(flat: dict) -> dict[str, np.ndarray]:
  """Inverse of torch_to_flax (names and layouts of pytorch-fid's state dict)."""
  out = {}
  for name, value in flat.items():
    parts = name.split('/')
    value = np.asarray(value)
    if parts[-1] == 'kernel' and value.ndim == 4:
      parts[-1], value = 'weight', value.transpose(3, 2, 0, 1)
    elif parts[-1] == 'kernel':
      parts[-1], value = 'weight', value.T
    elif len(parts) >= 2 and parts[-2] == 'bn':
      parts[-1] = _BN_INV[parts[-1]]
    out['.'.join(parts)] = np.ascontiguousarray(value)
  return out


# --- a pretrained network's weights file (.pth, or an .npz of Flax or torch names) ---

class WeightsFileError(ValueError):
  """A weights file that is unreadable or does not match the network."""


def _read_npz(data: bytes, to_flax) -> dict[str, np.ndarray]:
  flat = paths.npz_arrays(data)
  if flat and all('/' not in k and '.' in k for k in flat):  # a torch state dict saved as npz
    flat = to_flax(flat)
  return flat


def read_weights(path: str, to_flax, *, what: str, how: str) -> dict[str, np.ndarray]:
  """{Flax name: array} of a .pth (torch names, mapped by `to_flax`) or an .npz; `what`
  names the file in errors ('Inception weights'), `how` says what file is expected."""
  if not paths.isfile(path):
    raise FileNotFoundError(f'{what} file {path!r} not found. It must be a local file ({how})'
                            '; nothing is downloaded.')
  try:
    data = paths.read_bytes(path)
    if zipfile.is_zipfile(io.BytesIO(data)):
      with zipfile.ZipFile(io.BytesIO(data)) as zf:
        is_npz = any(n.endswith('.npy') for n in zf.namelist())
      if is_npz:
        return _read_npz(data, to_flax)
    return to_flax(read_torch(path, data))
  except TorchFormatError as e:
    raise WeightsFileError(f'{what} {e}') from None
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise WeightsFileError(f'{what} file {path} is unreadable (truncated or not an '
                           f'.npz/.pth): {type(e).__name__}: {e}') from None


def checked_params(flat: dict, shapes: dict, path: str, what: str, hint: str,
                   torch_name=None) -> dict[str, np.ndarray]:
  """float32 arrays of `shapes` (Flax name -> shape) from `flat`; WeightsFileError names the
  file and the first missing, misshapen, extra or non-finite parameter (with its torch
  name when `torch_name`, Flax name -> torch name, is given)."""
  for name, shape in shapes.items():
    if name not in flat:
      torch = f' (torch name {torch_name(name, shape)})' if torch_name else ''
      raise WeightsFileError(f'{what} file {path}: parameter {name!r}{torch} is missing; '
                             f'expected shape {shape}. {hint}.')
    found = tuple(np.shape(flat[name]))
    if found != shape:
      raise WeightsFileError(f'{what} file {path}: parameter {name!r} has shape {found}, '
                             f'expected {shape}. {hint}.')
  extra = [k for k in flat if k not in shapes]
  if extra:
    raise WeightsFileError(f'{what} file {path}: unexpected parameter {extra[0]!r} '
                           f'({len(extra)} unexpected in all). {hint}.')
  for name, value in flat.items():
    if not np.all(np.isfinite(value)):
      raise WeightsFileError(f'{what} file {path}: parameter {name!r} is not finite.')
  return {k: np.asarray(flat[k], np.float32) for k in shapes}

"""Host malloc settings that let XLA:CPU reuse its per-call buffers instead of faulting in
fresh pages on every step.

XLA:CPU allocates each executable's temporary buffer with posix_memalign on every call (2.3
GB for the TiTok-S-128 bf16 train step at batch 8) and frees it afterwards. glibc serves an
allocation above its mmap threshold, and any allocation from a worker thread's arena that
does not fit that arena's 64 MiB heap, with a fresh mmap, and unmaps it on free. So every
step page-faults in its whole temporary buffer again: 580k minor faults and 1.1-1.5 s of
kernel time (zeroing pages) per S-128 bf16 train step on the 2-core CPU, against about 7.5 s
of user time.

`reuse_freed_memory` sets three mallopt parameters: one arena for all threads
(M_ARENA_MAX=1), no mmap for large chunks (M_MMAP_MAX=0) and no trimming of the heap top
(M_TRIM_THRESHOLD=-1). Freed buffers then stay in the process heap and the next step reuses
them: 0 page faults per step, and the S-128 bf16 train step went from 5.07 to 4.01 s (median
of 4, same host, one process each; see benchmarks/README.md). The cost: the process keeps
its peak heap (it does not give freed memory back to the OS), and all threads share one
malloc arena.

Applied when `sbt_jax` is imported (see sbt_jax/__init__.py), before JAX starts its thread
pools, according to the environment variable SBT_JAX_HOST_MALLOC:
  'auto' (default): only where JAX has no accelerator plugin installed (no jax-cuda*,
      jax-rocm* or libtpu package): the CPU-only installs where XLA:CPU runs the model.
  'reuse': always.  'default': never (glibc's own settings).
"""
import ctypes
import importlib.metadata
import os
import sys

ENV_VAR = 'SBT_JAX_HOST_MALLOC'
MODES = ('auto', 'reuse', 'default')

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_ACCELERATOR_PACKAGES = ('jax-cuda', 'jax_cuda', 'jax-rocm', 'jax_rocm', 'libtpu')


def _glibc():
  """The process's glibc (a ctypes CDLL), or None on another C library or platform."""
  if not sys.platform.startswith('linux'):
    return None
  try:
    libc = ctypes.CDLL('libc.so.6')
    libc.gnu_get_libc_version.restype = ctypes.c_char_p
    libc.gnu_get_libc_version()
  except (OSError, AttributeError):
    return None
  return libc if hasattr(libc, 'mallopt') else None


def has_accelerator_plugin() -> bool:
  """Whether a JAX GPU/TPU plugin package is installed (read from package metadata, without
  importing JAX or starting a backend)."""
  for dist in importlib.metadata.distributions():
    name = (dist.metadata['Name'] or '').lower()
    if name.startswith(_ACCELERATOR_PACKAGES):
      return True
  return False


def reuse_freed_memory() -> bool:
  """Sets the three mallopt parameters (see the module docstring). True if glibc accepted all
  three; False where there is no glibc (nothing is changed there)."""
  libc = _glibc()
  if libc is None:
    return False
  ok = [libc.mallopt(_M_ARENA_MAX, 1), libc.mallopt(_M_MMAP_MAX, 0),
        libc.mallopt(_M_TRIM_THRESHOLD, -1)]
  return all(r == 1 for r in ok)


def configure_from_env() -> bool:
  """Applies SBT_JAX_HOST_MALLOC (see the module docstring); True if the settings were set."""
  mode = os.environ.get(ENV_VAR, 'auto').strip().lower() or 'auto'
  if mode not in MODES:
    raise ValueError(f'{ENV_VAR}={os.environ[ENV_VAR]!r}; expected one of {MODES}')
  if mode == 'default' or (mode == 'auto' and has_accelerator_plugin()):
    return False
  return reuse_freed_memory()

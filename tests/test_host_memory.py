"""host_memory: glibc malloc settings that let XLA:CPU reuse its per-call buffers."""
import json
import os
import subprocess
import sys

import pytest

from sbt_jax import host_memory

# Runs in a fresh interpreter (malloc settings are per process and must precede any thread's
# first allocation): page faults of allocating, touching and freeing 256 MiB with the C
# library's malloc, the path XLA:CPU's per-call buffers take (posix_memalign), after one
# warm-up round. (The effect on XLA's own buffers is measured in benchmarks/README.md.)
_PROBE = r'''
import ctypes, json, resource
import sbt_jax
libc = ctypes.CDLL('libc.so.6')
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
n = 256 * 2**20

def round_trip():
  p = libc.malloc(n)
  ctypes.memset(p, 1, n)
  libc.free(p)

round_trip()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
  round_trip()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4
print(json.dumps({'reuse': sbt_jax.HOST_MALLOC_REUSE, 'faults': faults}))
'''


def _probe(mode):
  env = dict(os.environ, SBT_JAX_HOST_MALLOC=mode, JAX_PLATFORMS='cpu')
  out = subprocess.run([sys.executable, '-c', _PROBE], env=env, capture_output=True, text=True,
                       check=True, timeout=300)
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(host_memory._glibc() is None, reason='needs glibc')  # pylint: disable=protected-access
def test_reuse_removes_page_faults_of_repeated_large_allocations():
  default, reuse = _probe('default'), _probe('reuse')
  assert not default['reuse'] and reuse['reuse']
  # 256 MiB are 65536 pages: with glibc's defaults they are mapped and faulted in on every
  # allocation; reused, almost none.
  assert default['faults'] > 30000, default
  assert reuse['faults'] < 1000, reuse


def test_bad_mode_is_a_clear_error(monkeypatch):
  monkeypatch.setenv(host_memory.ENV_VAR, 'bogus')
  with pytest.raises(ValueError, match='SBT_JAX_HOST_MALLOC'):
    host_memory.configure_from_env()


def test_auto_leaves_malloc_alone_next_to_an_accelerator_plugin(monkeypatch):
  calls = []
  monkeypatch.setattr(host_memory, 'reuse_freed_memory', lambda: calls.append(1) or True)
  monkeypatch.setenv(host_memory.ENV_VAR, 'auto')
  monkeypatch.setattr(host_memory, 'has_accelerator_plugin', lambda: True)
  assert host_memory.configure_from_env() is False and not calls
  monkeypatch.setattr(host_memory, 'has_accelerator_plugin', lambda: False)
  assert host_memory.configure_from_env() is True and calls
  monkeypatch.setenv(host_memory.ENV_VAR, 'default')
  assert host_memory.configure_from_env() is False and len(calls) == 1

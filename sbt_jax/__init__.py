"""sbt_jax: bootstrapped 1D image tokenizers (SelfBootTok, TiTok, TaTok, CRT) in JAX/Flax.

Importing the package sets glibc's malloc to reuse freed host memory on CPU-only installs,
before JAX starts (see sbt_jax/host_memory.py; SBT_JAX_HOST_MALLOC=default turns it off).
"""
from sbt_jax import host_memory as _host_memory

# Whether the malloc settings of host_memory.reuse_freed_memory are in effect.
HOST_MALLOC_REUSE = _host_memory.configure_from_env()

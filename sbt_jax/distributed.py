"""Starting JAX for one process or many: fake CPU devices, gloo collectives, distributed init.

On TPU pods and multi-host GPU clusters `jax.distributed.initialize()` with no arguments
finds the coordinator and this process's id from the environment. Elsewhere (several
processes on one machine, CI) the coordinator address, process count and id are given
explicitly; CPU processes then need gloo for cross-process collectives.
Everything here must run before the first JAX computation starts a backend.
"""
from absl import logging
import jax


def configure_cpu(num_devices: int) -> None:
  """`num_devices` fake CPU devices in this process and gloo cross-process collectives."""
  if num_devices < 1:
    raise ValueError(f'cpu_devices={num_devices} must be >= 1')
  jax.config.update('jax_num_cpu_devices', num_devices)
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')


def initialize(*, coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
  """jax.distributed.initialize(): explicit when a coordinator is given, else auto-detected.

  The three arguments go together: give all of them (processes on one machine, CPU
  clusters) or none (TPU pods, SLURM/Open MPI GPU clusters, where JAX detects them).
  """
  explicit = (coordinator_address, num_processes, process_id)
  if any(v is not None for v in explicit) and any(v is None for v in explicit):
    raise ValueError('--coordinator_address, --num_processes and --process_id go together: '
                     f'got {coordinator_address!r}, {num_processes!r}, {process_id!r}')
  if coordinator_address is not None:
    if not 0 <= process_id < num_processes:
      raise ValueError(f'--process_id={process_id} is not in [0, --num_processes='
                       f'{num_processes})')
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  else:
    jax.distributed.initialize()
  logging.info('jax.distributed initialized: process %d of %d.', jax.process_index(),
               jax.process_count())

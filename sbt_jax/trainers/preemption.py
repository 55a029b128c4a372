"""Preemption notices (SIGTERM): every process agrees on one step at which to save and stop.

One process: a SIGTERM handler sets a flag, read at the next step boundary.
Several processes (after jax.distributed.initialize): JAX's preemption service already
catches SIGTERM on each host and runs a sync protocol; `reached_preemption_sync_point(step)`
turns True on every host at the same step, so all hosts save the same checkpoint and stop
together (a host stopping alone would hang the others in their next collective).
"""
import signal
import threading

from absl import logging
import jax
from jax.experimental import multihost_utils


class PreemptionWatcher:
  """`should_stop(step)` is True once a preemption notice arrived (at the same step on
  every host). Use as a context manager: the previous SIGTERM handler is put back."""

  def __init__(self):
    self._notice = threading.Event()
    self._previous = None
    self._multi_process = jax.process_count() > 1

  def __enter__(self):
    # Python can only install handlers in the main thread; elsewhere (a test runner thread)
    # preemption is simply not watched.
    if not self._multi_process and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
    return self

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def _on_sigterm(self, signum, frame):  # pylint: disable=unused-argument
    logging.warning('SIGTERM: saving a checkpoint at the next step boundary, then stopping.')
    self._notice.set()

  def should_stop(self, step: int) -> bool:
    """Called once per step, with the same step on every host."""
    if self._multi_process:
      return multihost_utils.reached_preemption_sync_point(step)
    return self._notice.is_set()

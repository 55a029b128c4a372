"""Orbax checkpoints of the train state and the grain data iterator (async, keep-N).

Every error a user can cause (no checkpoint, a corrupt or truncated one, one written for a
different model) becomes a `CheckpointError` naming the directory and step.
"""
from typing import Any

import jax
import orbax.checkpoint as ocp

from sbt_jax import paths
from sbt_jax.data import pipeline


class CheckpointError(RuntimeError):
  """A checkpoint is missing, corrupt or does not match the model."""


def checkpoint_dir(workdir: str) -> str:
  return paths.join(paths.resolve(workdir), 'checkpoints')


def abstract_like(tree, shardings):
  """ShapeDtypeStructs (with shardings) to restore `tree`'s structure onto a mesh."""
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      tree, shardings)


class Checkpointer:
  """Saves {'state', 'data_iter'} per step under <workdir>/checkpoints."""

  def __init__(self, workdir: str, *, keep: int = 2, async_save: bool = True,
               with_data_iter: bool = True):
    self.directory = checkpoint_dir(workdir)
    self.with_data_iter = with_data_iter
    handlers = {'state': ocp.StandardCheckpointHandler()}
    if with_data_iter:
      handlers['data_iter'] = pipeline.ITER_HANDLER
    self.manager = ocp.CheckpointManager(
        self.directory, item_names=tuple(handlers), item_handlers=handlers,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, data_iter=None) -> None:
    items = {'state': ocp.args.StandardSave(state)}
    if self.with_data_iter:
      items['data_iter'] = pipeline.iter_save_args(data_iter)
    self.manager.save(step, args=ocp.args.Composite(**items))

  def restore(self, step: int, abstract_state, data_iter=None) -> Any:
    """State at `step` restored onto `abstract_state`'s shardings; data_iter set in place."""
    items = {'state': ocp.args.StandardRestore(abstract_state)}
    if self.with_data_iter and data_iter is not None:
      items['data_iter'] = pipeline.iter_restore_args(data_iter)
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # Orbax raises many types for bad files; name the checkpoint.
      raise CheckpointError(
          f'Could not restore checkpoint step {step} from {self.directory}: it is corrupt, '
          f'incomplete, or was written for a different model/config '
          f'({type(e).__name__}: {str(e)[:500]}). Move it away to resume from an older '
          f'step, or start a new workdir.') from e
    return restored['state']

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()

"""The one training loop every stage shares.

A stage is a task object (see trainers/__init__.py) with `boxed_state`, `init_state`,
`load_frozen`, a pure `train_step(state, frozen, batch, rng)` and `evaluate` (and
optionally `make_train_loader(workdir)` when its batches are not data.*'s images). This loop
owns the mesh, shardings, jit signature (donated state, frozen params as a non-donated
argument), data, checkpoints, metrics, the stop-on-NaN rule and preemption (SIGTERM: save,
stop).
"""
import math
import time

from absl import logging
from clu import periodic_actions
import jax
import ml_collections
import numpy as np

from sbt_jax import checkpointing
from sbt_jax import config_defaults
from sbt_jax import paths
from sbt_jax import sharding
from sbt_jax import trainers
from sbt_jax.data import image_folder
from sbt_jax.data import pipeline
from sbt_jax.trainers import preemption
from sbt_jax.trainers import setup
from sbt_jax.trainers import writers


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN/inf; the run stopped without saving the bad state."""


def _due(step: int, every: int, last: int) -> bool:
  return step == last or (every > 0 and step % every == 0)


def save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  if jax.process_index() == 0:
    paths.write_text(paths.join(workdir, 'config.json'), config.to_json_best_effort(indent=2))
    if config.data.name == 'folder':  # label i of the run's data is class_names[i]
      image_folder.save_class_names(config.data, workdir)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, task_cls=None,
                       devices=None):
  """Trains config.stage from scratch or from the latest checkpoint in workdir.

  The mesh spans `devices` (default: all). A checkpoint restores onto whatever mesh this
  run has (Orbax reshards), so a run saved on data=8 can continue as data=2 x fsdp=2.
  On SIGTERM it saves a checkpoint at the next step and returns early (state.step tells).
  """
  config_defaults.validate(config)
  workdir = paths.resolve(workdir)  # a local path or gs://...
  save_config(config, workdir)
  mesh = sharding.make_mesh(config.mesh, devices)
  task = (task_cls or trainers.get_task(config.stage))(config, mesh)
  num_steps = config.train.num_steps
  if config.data.global_batch_size % (mesh.shape['data'] * mesh.shape['fsdp']):
    raise ValueError(f'data.global_batch_size={config.data.global_batch_size} is not '
                     f'divisible by the batch mesh axes data x fsdp = '
                     f'{mesh.shape["data"] * mesh.shape["fsdp"]}')

  if hasattr(task, 'make_train_loader'):  # A stage that serves its own data (e.g. ids).
    data_iter = iter(task.make_train_loader(workdir))
  else:
    data_iter = iter(pipeline.make_train_loader(
        config.data, seed=config.seed, process_index=jax.process_index(),
        process_count=jax.process_count()))
  ckpt = checkpointing.Checkpointer(workdir, keep=config.train.keep_checkpoints,
                                    async_save=config.train.async_checkpoint)
  prepared = setup.prepare(task, config, mesh, checkpointer=ckpt, data_iter=data_iter)
  state, frozen, step_fn = prepared.state, prepared.frozen, prepared.step_fn
  start, step_rng = prepared.start_step, prepared.step_rng
  if start:
    logging.info('Resumed from %s at step %d.', ckpt.directory, start)

  writer = writers.create_writer(workdir)
  if start == 0:
    n_params = sum(math.prod(x.shape) for x in jax.tree.leaves(state.params))
    writer.write_scalars(0, {'num_params': n_params})
  report = periodic_actions.ReportProgress(num_train_steps=num_steps, writer=writer)
  pending, last_good_step, t0 = [], start, time.time()
  last_eval, preempted = {}, False
  try:
    with preemption.PreemptionWatcher() as watcher:
      for step in range(start + 1, num_steps + 1):
        with jax.profiler.StepTraceAnnotation('train', step_num=step):
          batch = sharding.global_batch(next(data_iter), mesh)
          state, metrics = step_fn(state, frozen, batch, jax.random.fold_in(step_rng, step))
        pending.append(metrics)
        report(step)
        preempted = watcher.should_stop(step) and step < num_steps
        save_now = preempted or _due(step, config.train.checkpoint_every, num_steps)
        if save_now or _due(step, config.train.log_every, num_steps):
          host = jax.device_get(pending)
          pending = []
          losses = np.array([m['loss'] for m in host])
          if not np.all(np.isfinite(losses)):
            bad = step - len(host) + 1 + int(np.argmin(np.isfinite(losses)))
            raise NonFiniteLossError(
                f'Loss became {losses[~np.isfinite(losses)][0]} at step {bad}; stopped '
                f'without saving. The last good checkpoint (step {last_good_step}) is kept '
                f'in {ckpt.directory}. Lower optim.learning_rate or check the data.')
          means = {f'train/{k}': float(np.mean([m[k] for m in host])) for k in host[0]}
          means['train/images_per_sec'] = (len(host) * config.data.global_batch_size
                                           / max(time.time() - t0, 1e-9))
          if config.data.name == 'folder':  # unreadable files skipped so far (this host)
            means['train/skipped_images'] = image_folder.num_skipped()
          writer.write_scalars(step, means)
          t0 = time.time()
        if (not preempted and config.train.eval_every >= 0
            and _due(step, config.train.eval_every, num_steps)):
          with report.timed('eval'):
            last_eval = task.evaluate(state, frozen, step=step, workdir=workdir)
          writer.write_scalars(step, last_eval)
        if save_now:
          ckpt.save(step, state, data_iter)
          last_good_step = step
        if preempted:
          break
    writer.flush()
  finally:
    ckpt.wait()
    ckpt.close()
  if preempted:
    logging.warning('Preempted: stopped after step %d of %d with a checkpoint in %s; run '
                    'the same command again to resume.', step, num_steps, ckpt.directory)
    return state, {}
  if jax.process_index() == 0 and last_eval:
    paths.write_json(paths.join(workdir, 'eval_final.json'), {'step': num_steps, **last_eval},
                     indent=2)
  return state, last_eval

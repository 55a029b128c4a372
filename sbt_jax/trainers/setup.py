"""The one set-up every stage, benchmark and test shares: shardings, state, frozen params
and the compiled step, exactly as training runs them.

  s = setup.prepare(task, config, mesh)                    # fresh state
  s = setup.prepare(task, config, mesh, checkpointer=ckpt, data_iter=it)   # or resumed
  state, metrics = s.step_fn(s.state, s.frozen, batch, rng)
"""
import dataclasses
from typing import Any

import jax

from sbt_jax import checkpointing
from sbt_jax import sharding


def compile_train_step(train_step, mesh, state_shardings, rules, frozen_shardings=None):
  """jax.jit of train_step(state, frozen, batch, rng): state sharded and donated, frozen
  params as placed (`frozen_shardings`; default replicated) and never donated, the rng
  replicated, the batch split over data x fsdp; activations laid out by `rules`
  (models/layout.constrain in the model code)."""
  repl = sharding.replicated(mesh)

  def step(state, frozen, batch, rng):
    with sharding.activation_sharding(mesh, rules):
      return train_step(state, frozen, batch, rng)
  return jax.jit(step,
                 in_shardings=(state_shardings, frozen_shardings or repl,
                               sharding.batch_sharding(mesh), repl),
                 out_shardings=(state_shardings, repl),
                 donate_argnums=(0,))


@dataclasses.dataclass
class Prepared:
  state: Any            # the train state, on the mesh
  state_shardings: Any  # NamedSharding per state leaf
  frozen: Any           # frozen params (LPIPS: replicated; an upstream tokenizer: by rules)
  step_fn: Any          # the compiled train step
  start_step: int       # 0, or the step of the restored checkpoint
  step_rng: Any         # fold_in(step_rng, step) is the rng of step `step`


def init_rng(config):
  """The rng the state is initialised from (the other half of key(seed) drives the steps)."""
  return jax.random.split(jax.random.key(config.seed))[0]


def state_shardings(task, config, mesh):
  """NamedSharding of every leaf of task's train state on `mesh` (config.mesh.rules)."""
  return sharding.state_shardings(jax.eval_shape(task.boxed_state, init_rng(config)), mesh,
                                  config.mesh.rules)


def restore_state(task, config, mesh, checkpointer: checkpointing.Checkpointer,
                  step: int | None = None, data_iter=None, shardings=None):
  """task's train state at `step` (None: the latest) of `checkpointer`, placed on `mesh`
  (Orbax reshards a checkpoint saved on another mesh); data_iter is set in place."""
  shardings = shardings or state_shardings(task, config, mesh)
  abstract = checkpointing.abstract_like(jax.eval_shape(task.init_state, init_rng(config)),
                                         shardings)
  step = checkpointer.latest_step() if step is None else step
  return checkpointer.restore(step, abstract, data_iter)


def prepare(task, config, mesh, *, checkpointer: checkpointing.Checkpointer | None = None,
            data_iter=None, train_step=None, frozen=None) -> Prepared:
  """Init (or restore the latest checkpoint of `checkpointer`, setting data_iter in place)
  the state of `task` on `mesh`, load its frozen params (unless given), compile its step
  (`train_step` overrides task.train_step, e.g. wrapped by a test)."""
  rng, step_rng = jax.random.split(jax.random.key(config.seed))
  state_sh = state_shardings(task, config, mesh)
  start = checkpointer.latest_step() if checkpointer is not None else None
  if start is not None:
    state = restore_state(task, config, mesh, checkpointer, start, data_iter, state_sh)
  else:
    start = 0
    state = jax.jit(task.init_state, out_shardings=state_sh)(rng)
    if hasattr(task, 'warm_start'):  # a tokenizer run may start from another's params
      state = task.warm_start(state, state_sh)
  frozen = task.load_frozen() if frozen is None else frozen
  frozen_sh = sharding.placed_or_replicated(frozen, mesh)
  frozen = jax.device_put(frozen, frozen_sh)
  step_fn = compile_train_step(train_step or task.train_step, mesh, state_sh,
                               config.mesh.rules, frozen_sh)
  return Prepared(state, state_sh, frozen, step_fn, start, step_rng)

"""Train state (params, EMA params, optimizer state) and the optimizer a config describes."""
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  ema_params: Any
  opt_state: Any
  # State a stage keeps beside params and opt_state (codebook usage EMAs; the CRT predictor's
  # params and its own optimizer state under 'crt'); None if it keeps none.
  model_state: Any = None


def learning_rate_schedule(optim: ml_collections.ConfigDict, num_steps: int):
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=optim.learning_rate,
      warmup_steps=max(1, min(optim.warmup_steps, num_steps - 1)),
      decay_steps=max(num_steps, optim.warmup_steps + 1),
      end_value=optim.learning_rate * optim.end_lr_fraction)


def _decay_mask(params):
  """Weight decay on dense kernels only (not biases, norms, embeddings or codebooks)."""
  def is_kernel(path, _):
    return any(getattr(k, 'key', None) == 'kernel' for k in path)
  return jax.tree_util.tree_map_with_path(is_kernel, params)


def trainable_groups(trainable: str) -> tuple[str, ...]:
  """config.train.trainable -> the top-level parameter groups that train (() = all)."""
  return tuple(name.strip() for name in trainable.split(',') if name.strip())


def _is_trainable(groups, name) -> bool:
  return not groups or name in groups


def trainable_labels(params, groups):
  """'train' / 'freeze' per leaf, by the leaf's top-level group (optax.multi_transform)."""
  return {name: jax.tree.map(lambda _, n=name: 'train' if _is_trainable(groups, n)
                             else 'freeze', sub) for name, sub in params.items()}


def make_optimizer(optim: ml_collections.ConfigDict, num_steps: int,
                   trainable: str = '') -> optax.GradientTransformation:
  """AdamW with warmup + cosine decay (and clipping); with `trainable` groups, the other
  groups get zero updates (clipping then sees only the trainable gradients)."""
  parts = []
  if optim.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(optim.grad_clip_norm))
  parts.append(optax.adamw(learning_rate_schedule(optim, num_steps), b1=optim.b1, b2=optim.b2,
                           weight_decay=optim.weight_decay, mask=_decay_mask))
  tx = optax.chain(*parts)
  groups = trainable_groups(trainable)
  if not groups:
    return tx
  return optax.multi_transform({'train': tx, 'freeze': optax.set_to_zero()},
                               lambda params: trainable_labels(params, groups))


def create(params, tx: optax.GradientTransformation, use_ema: bool,
           model_state=None) -> TrainState:
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      ema_params=jax.tree.map(jnp.copy, params) if use_ema else None,
      opt_state=tx.init(params), model_state=model_state)


def ema_decay_at(step, ema_decay: float):
  """EMA decay warmed up as (1 + t) / (10 + t), capped at ema_decay, so early params fade
  fast (with a fixed 0.999 the initial params would still weigh 22% after 1,500 steps)."""
  t = step.astype(jnp.float32)
  return jnp.minimum(ema_decay, (1.0 + t) / (10.0 + t))


def apply_gradients(state: TrainState, grads, tx, ema_decay: float,
                    trainable: str = '') -> TrainState:
  """One optimizer step and the EMA update; groups outside `trainable` (if given) keep
  their params and EMA params bit for bit."""
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  groups = trainable_groups(trainable)
  if groups:  # p + 0.0 is p, but keep the frozen groups as they are regardless
    params = {k: v if _is_trainable(groups, k) else state.params[k] for k, v in params.items()}
  ema = state.ema_params
  if ema is not None:
    step_size = 1.0 - ema_decay_at(state.step, ema_decay)
    if groups:
      ema = {k: optax.incremental_update(params[k], v, step_size)
             if _is_trainable(groups, k) else v for k, v in ema.items()}
    else:
      ema = optax.incremental_update(params, ema, step_size)
  return state.replace(step=state.step + 1, params=params, ema_params=ema,
                       opt_state=opt_state)


def eval_params(state: TrainState):
  return state.ema_params if state.ema_params is not None else state.params

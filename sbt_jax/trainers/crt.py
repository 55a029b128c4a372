"""CRT in the tokenizer stage: the predictor's params and own optimizer, and the loss wrap.

The predictor lives in TrainState.model_state['crt'] = {'params', 'opt_state'}, apart from
the tokenizer's params and optimizer state (a run without CRT keeps the checkpoint layout it
always had), and is updated by its own AdamW (config.crt.optim) on its own
next-token L2 loss. The tokenizer's loss gains lambda(step) * the same L2 loss with the
predictor held fixed; that gradient flows through z into the encoder.
"""
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sbt_jax.models import crt as crt_model
from sbt_jax.trainers import state as state_lib

# TrainState.model_state key of the predictor's {'params', 'opt_state'}.
KEY = 'crt'


class CrtRegularizer:
  """What the tokenizer step needs to train with CRT (built only when config.crt.enabled)."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.predictor = crt_model.build_predictor(config)
    self.tx = state_lib.make_optimizer(config.crt.optim, config.train.num_steps)

  def boxed_state(self, rng):
    """{'params', 'opt_state'} with nn.Partitioned params (shardings come from them)."""
    m = self.config.model
    z_1xGxT = jnp.zeros((1, m.num_global_tokens, m.token_dim), jnp.float32)
    params = self.predictor.init(rng, z_1xGxT)['params']
    return {'params': params, 'opt_state': self.tx.init(params)}

  def with_regularizer(self, loss_fn, step):
    """loss_fn(params, *args) -> (loss, (metrics, aux)) becomes
    total(params, crt_params, *args): its gradient w.r.t. params is that of
    loss + lambda(step) * crt_loss, w.r.t. crt_params that of crt_loss alone.

    metrics['loss'] is the tokenizer's objective (with the weighted CRT term);
    'crt_loss' is the predictor's L2 loss and 'crt_weight' lambda(step).
    """
    weight = crt_model.ramp_weight(step, self.config.crt)

    def total(params, crt_params, *args):
      loss, (metrics, aux) = loss_fn(params, *args)
      reg, own = crt_model.regularizer_and_predictor_losses(self.predictor, crt_params,
                                                            aux['z'])
      loss = loss + weight * reg
      metrics.update(loss=loss, crt_loss=own, crt_weight=weight)
      return loss + own, (metrics, aux)

    return total

  def apply_gradients(self, crt_state, grads):
    updates, opt_state = self.tx.update(grads, crt_state['opt_state'], crt_state['params'])
    return {'params': optax.apply_updates(crt_state['params'], updates),
            'opt_state': opt_state}


def maybe_create(config: ml_collections.ConfigDict) -> CrtRegularizer | None:
  return CrtRegularizer(config) if config.crt.enabled else None


def value_and_grads(loss_fn, state, crt, *args):
  """((loss, (metrics, aux)), tokenizer grads, predictor grads or None) for one batch."""
  if crt is None:
    out, grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, *args)
    return out, grads, None
  total = crt.with_regularizer(loss_fn, state.step)
  out, (grads, crt_grads) = jax.value_and_grad(total, argnums=(0, 1), has_aux=True)(
      state.params, state.model_state[KEY]['params'], *args)
  return out, grads, crt_grads


def with_predictor_update(state, crt, crt_grads):
  """state with the predictor stepped by its own optimizer."""
  model_state = dict(state.model_state)
  model_state[KEY] = crt.apply_gradients(model_state[KEY], crt_grads)
  return state.replace(model_state=model_state)

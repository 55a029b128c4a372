"""Aligner stage: train a SelfBootTok 2D aligner of any size against a frozen tokenizer.

The tokenizer (encoder, quantizers, prototype MLP, decoder) is restored from
`config.aligner.tokenizer_workdir` (params only) and passed to the jitted step as the
non-donated `frozen` argument; the train state holds only the new aligner's params, so no
frozen parameter can change and the global ids stay exactly those of the tokenizer.
Two phases: steps < aligner.phase1_steps fit the 2D tokens (||f_hat - f||^2), later steps
fit the local ids (cross-entropy) plus phase2_align_weight * alignment.

Generate mode with this aligner: `inference.Tokenizer(tokenizer_workdir,
aligner_workdir=<this run's workdir>)`.
"""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax

from sbt_jax import checkpointing
from sbt_jax import inference
from sbt_jax.evaluators import lpips as lpips_lib
from sbt_jax.models import registry
from sbt_jax.trainers import state as state_lib
from sbt_jax.trainers import tokenizer as tokenizer_lib


def tokenizer_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The frozen tokenizer's config (from its workdir), checked against this run's data."""
  tok = inference.load_config(config.aligner.tokenizer_workdir)
  if tok.model.name != 'selfboottok':
    raise ValueError(f'aligner.tokenizer_workdir={config.aligner.tokenizer_workdir!r} holds a '
                     f'{tok.model.name!r} tokenizer; the aligner stage needs a selfboottok')
  for key in ('image_size', 'channels'):
    if tok.data[key] != config.data[key]:
      raise ValueError(f'data.{key}={config.data[key]} differs from the tokenizer\'s '
                       f'({tok.data[key]}) in {config.aligner.tokenizer_workdir}')
  return tok


def aligner_loss(aligner_params, frozen, batch, step, *, model, config):
  params = {**frozen['tokenizer'], 'aligner': aligner_params}
  t = model.apply({'params': params}, batch['image'], method='aligner_targets')
  t = jax.lax.stop_gradient(t)
  logits, f_hat = model.apply({'params': params}, t['g_q'], t['protos'],
                              method='aligner_predict')
  align = jnp.mean(jnp.sum(jnp.square(f_hat - t['f']), -1))
  ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, t['local_ids']))
  phase1 = step < config.aligner.phase1_steps
  loss = jnp.where(phase1, align, ce + config.aligner.phase2_align_weight * align)
  acc = jnp.mean((jnp.argmax(logits, -1) == t['local_ids']).astype(jnp.float32))
  return loss, {'loss': loss, 'align_loss': align, 'local_ce': ce, 'local_accuracy': acc,
                'phase': jnp.where(phase1, 1.0, 2.0)}


def train_step(state, frozen, batch, rng, *, model, tx, config):
  del rng  # The aligner step is deterministic.
  grad_fn = jax.value_and_grad(
      functools.partial(aligner_loss, model=model, config=config), has_aux=True)
  (_, metrics), grads = grad_fn(state.params, frozen, batch, state.step)
  metrics['grad_norm'] = optax.tree.norm(grads)
  metrics['learning_rate'] = state_lib.learning_rate_schedule(
      config.optim, config.train.num_steps)(state.step)
  return state_lib.apply_gradients(state, grads, tx, config.optim.ema_decay), metrics


class AlignerTask(tokenizer_lib.TokenizerTask):
  """Shares the tokenizer's eval (both modes, PNG grid) with the merged params."""

  def __init__(self, config: ml_collections.ConfigDict, mesh):  # pylint: disable=super-init-not-called
    self.config = config
    self.mesh = mesh
    self.tokenizer_config = tokenizer_config(config)
    # Eval reads model/codebook sizes from self.config: use the tokenizer's model section.
    merged = ml_collections.ConfigDict(self.tokenizer_config.to_dict())
    merged.data = config.data
    merged.train = config.train
    self.eval_config = merged
    self.model = registry.build_tokenizer(self.tokenizer_config,
                                          aligner_cfg=config.aligner.model)
    self.tx = state_lib.make_optimizer(config.optim, config.train.num_steps)
    self.train_step = functools.partial(train_step, model=self.model, tx=self.tx,
                                        config=config)
    self._eval_step = None

  def boxed_state(self, rng):
    params = self.model.init(rng, self.dummy_images())['params']
    return state_lib.create(params['aligner'], self.tx, self.config.optim.ema_decay > 0, {})

  def load_frozen(self):
    """Tokenizer params (EMA if kept) without its own aligner, + LPIPS for eval."""
    tok_task = tokenizer_lib.TokenizerTask(self.tokenizer_config, self.mesh)
    step = self.config.aligner.tokenizer_step
    params, _ = checkpointing.restore_task_params(
        tok_task, self.config.aligner.tokenizer_workdir, self.mesh,
        self.tokenizer_config.mesh.rules, None if step < 0 else step)
    params = {k: v for k, v in params.items() if k != 'aligner'}
    return {'tokenizer': params, 'lpips': lpips_lib.load_params('vgg16')}

  def full_params(self, state, frozen):
    return {**frozen['tokenizer'], 'aligner': state_lib.eval_params(state)}

"""Aligner stage: train a SelfBootTok 2D aligner of any size against a frozen tokenizer.

The tokenizer (encoder, quantizers, prototype MLP, decoder) is restored from
`config.aligner.tokenizer_workdir` (params only, through sbt_jax/runs.py) and passed to
the jitted step as the non-donated `frozen` argument; the train state holds only the new
aligner's params, so no frozen parameter can change and the global ids stay exactly those
of the tokenizer. Two phases: steps < aligner.phase1_steps fit the 2D tokens
(||f_hat - f||^2), later steps fit the local ids (cross-entropy) plus
phase2_align_weight * alignment.

Generate mode with this aligner: `inference.Tokenizer(tokenizer_workdir,
aligner_workdir=<this run's workdir>)`.
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sbt_jax import runs
from sbt_jax.evaluators import tokenizer_eval
from sbt_jax.losses import perceptual
from sbt_jax.losses import terms
from sbt_jax.models import registry
from sbt_jax.trainers import state as state_lib


def tokenizer_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The frozen tokenizer's config (from its workdir), checked against this run's data."""
  workdir = config.aligner.tokenizer_workdir
  tok = runs.load_config(workdir)
  if not registry.spec(tok).has_aligner_stage:
    raise ValueError(f'aligner.tokenizer_workdir={workdir!r} holds a {tok.model.name!r} '
                     'tokenizer, which has no aligner stage')
  for key in ('image_size', 'channels'):
    if tok.data[key] != config.data[key]:
      raise ValueError(f'data.{key}={config.data[key]} differs from the tokenizer\'s '
                       f'({tok.data[key]}) in {workdir}')
  return tok


def aligner_loss(aligner_params, frozen, batch, step, *, model, config):
  params = {**frozen['tokenizer'], 'aligner': aligner_params}
  t = model.apply({'params': params}, batch['image'], method='aligner_targets')
  t = jax.lax.stop_gradient(t)
  logits, f_hat = model.apply({'params': params}, t['g_q'], t['protos'],
                              method='aligner_predict')
  align = terms.alignment_loss(f_hat, t['f'])
  ce = terms.token_cross_entropy(logits, t['local_ids'])
  phase1 = step < config.aligner.phase1_steps
  loss = jnp.where(phase1, align, ce + config.aligner.phase2_align_weight * align)
  acc = terms.token_accuracy(logits, t['local_ids'])
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


class AlignerTask:
  """Trains params['aligner']; eval is the tokenizer's (both modes, PNG grid) with the
  frozen tokenizer's params and this aligner."""

  def __init__(self, config: ml_collections.ConfigDict, mesh):
    self.config = config
    self.mesh = mesh
    self.tokenizer_config = tokenizer_config(config)
    self.spec = registry.spec(self.tokenizer_config)
    self.model = self.spec.build(self.tokenizer_config, config.aligner.model)
    self.tx = state_lib.make_optimizer(config.optim, config.train.num_steps)
    self.train_step = functools.partial(train_step, model=self.model, tx=self.tx,
                                        config=config)
    # Eval reads model/codebook sizes from the tokenizer, data and train.* from this run.
    eval_config = ml_collections.ConfigDict(self.tokenizer_config.to_dict())
    eval_config.data = config.data
    eval_config.train = config.train
    self._eval_config = eval_config
    self._evaluator = None

  def boxed_state(self, rng):
    params = self.model.init(rng, runs.dummy_images(self.config))['params']
    return state_lib.create(params['aligner'], self.tx, self.config.optim.ema_decay > 0, {})

  def init_state(self, rng):
    return nn.meta.unbox(self.boxed_state(rng))

  def load_frozen(self):
    """Tokenizer params (EMA if kept) without its own aligner, + LPIPS for eval."""
    step = self.config.aligner.tokenizer_step
    tok = runs.restore_tokenizer(self.config.aligner.tokenizer_workdir, self.mesh,
                                 None if step < 0 else step)
    params = {k: v for k, v in tok.params.items() if k != 'aligner'}
    return {'tokenizer': params, **perceptual.frozen_params()}

  def evaluate(self, state, frozen, *, step: int, workdir: str | None):
    if self._evaluator is None:
      self._evaluator = tokenizer_eval.TokenizerEvaluator(self.model, self.spec,
                                                          self._eval_config, self.mesh)
    params = {**frozen['tokenizer'], 'aligner': state_lib.eval_params(state)}
    return self._evaluator(params, frozen, step=step, workdir=workdir)

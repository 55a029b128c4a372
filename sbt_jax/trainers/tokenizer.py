"""Tokenizer stage (TiTok, SelfBootTok, TaTok): the pure train step and its task.

`train_step(state, frozen, batch, rng, *, model, spec, tx, config, crt, adv)` is pure; the
shared set-up (trainers/setup.py) binds the keyword arguments and jits it with shardings.
`frozen` holds the LPIPS network's params. The objective is losses/tokenizer.py's; what a
family adds (its codebooks, terms, extra inputs) comes from its spec (models/spec.py).
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
from sbt_jax.losses import tokenizer as tokenizer_loss_lib
from sbt_jax.models import codebook_restart
from sbt_jax.models import registry
from sbt_jax.trainers import adversarial as adv_lib
from sbt_jax.trainers import crt as crt_lib
from sbt_jax.trainers import state as state_lib


# frozen[TEACHER]: the EMA params whose target_features replace aux['f'] (SelfBootTok with
# model.align_targets='ema'); train_step puts them there, never differentiated.
TEACHER = 'align_teacher'


def tokenizer_loss(params, frozen, batch, rng=None, *, model, spec, config):
  """Scalar loss, and (metrics, model outputs + 'recon') for one batch in [-1, 1]."""
  x_BxHxWxC = batch['image']
  args = spec.train_args(rng, x_BxHxWxC.shape[0], config)
  recon_BxHxWxC, aux = model.apply({'params': params}, x_BxHxWxC, *args)
  if TEACHER in frozen:
    frozen = dict(frozen)
    teacher = jax.lax.stop_gradient(frozen.pop(TEACHER))
    aux = {**aux, 'f': model.apply({'params': teacher}, x_BxHxWxC,
                                   method='target_features')}
  loss, metrics = tokenizer_loss_lib.tokenizer_objective(
      recon_BxHxWxC, aux, x_BxHxWxC, frozen, config=config, spec=spec,
      dtype=model.options.dtype)
  return loss, (metrics, {**aux, 'recon': recon_BxHxWxC})


def _restart_dead_codes(state, aux, rng, config, books):
  """Updates usage EMAs and, on restart steps, moves dead codes onto batch outputs."""
  m = config.model
  groups = state_lib.trainable_groups(config.train.trainable)
  enabled = state.step % m.dead_code_restart_every == 0
  params, ema, model_state = state.params, state.ema_params, dict(state.model_state)
  restarted = 0
  for i, book in enumerate(books):
    usage_K = codebook_restart.update_usage(model_state[book.usage_key], aux[book.ids_key],
                                            m.usage_decay)
    # FSQ (no codebook params) or a frozen codebook: the EMA still feeds usage metrics.
    if not book.restartable or (groups and book.param not in groups):
      model_state[book.usage_key] = usage_K
      continue
    z_NxT = aux[book.z_key].reshape(-1, aux[book.z_key].shape[-1])
    codebook, usage_K, dead_K = codebook_restart.restart(
        params[book.param]['codebook'], usage_K, z_NxT, jax.random.fold_in(rng, i),
        threshold=m.dead_code_threshold, enabled=enabled)
    params = _with_codebook(params, book.param, codebook)
    if ema is not None:  # Restarted codes jump in the EMA copy too, so eval sees them.
      ema = _with_codebook(ema, book.param, jnp.where(dead_K[:, None], codebook,
                                                      ema[book.param]['codebook']))
    model_state[book.usage_key] = usage_K
    restarted = restarted + jnp.sum(dead_K)
  return state.replace(params=params, ema_params=ema, model_state=model_state), restarted


def _with_codebook(params, name, codebook):
  return {**params, name: {**params[name], 'codebook': codebook}}


def train_step(state, frozen, batch, rng, *, model, spec, tx, config, crt=None, adv=None):
  """`crt` (a trainers.crt.CrtRegularizer) adds the CRT term and updates its predictor;
  `adv` (a trainers.adversarial.AdversarialTrainer) adds the generator term and then steps
  the discriminator on this batch's reconstructions."""
  loss_fn = functools.partial(tokenizer_loss, model=model, spec=spec, config=config)
  if config.model.align_targets == 'ema':
    frozen = {**frozen, TEACHER: state.ema_params}
  if adv is not None:
    loss_fn = adv.with_generator_term(loss_fn, state.model_state[adv_lib.KEY]['params'],
                                      state.step)
  loss_rng, restart_rng = jax.random.split(rng)
  (_, (metrics, aux)), grads, crt_grads = crt_lib.value_and_grads(loss_fn, state, crt,
                                                                  frozen, batch, loss_rng)
  if crt is not None:
    metrics['crt_grad_norm'] = optax.tree.norm(crt_grads)
    state = crt_lib.with_predictor_update(state, crt, crt_grads)
  if adv is not None:
    disc_state, disc_metrics = adv.update(state.model_state[adv_lib.KEY], batch['image'],
                                          aux['recon'], state.step)
    metrics.update(disc_metrics)
    state = state.replace(model_state={**state.model_state, adv_lib.KEY: disc_state})
  metrics['grad_norm'] = optax.tree.norm(grads)
  metrics['learning_rate'] = state_lib.learning_rate_schedule(
      config.optim, config.train.num_steps)(state.step)
  new_state = state_lib.apply_gradients(state, grads, tx, config.optim.ema_decay,
                                        config.train.trainable)
  if config.model.dead_code_restart_every > 0:
    new_state, metrics['codes_restarted'] = _restart_dead_codes(
        new_state, aux, restart_rng, config, spec.codebooks(config))
  return new_state, metrics


class TokenizerTask:
  """What the shared loop needs from the tokenizer stage."""

  def __init__(self, config: ml_collections.ConfigDict, mesh):
    self.config = config
    self.mesh = mesh
    self.spec = registry.spec(config)
    self.model = self.spec.build(config)
    self._check_trainable()
    self.tx = state_lib.make_optimizer(config.optim, config.train.num_steps,
                                       config.train.trainable)
    self.crt = crt_lib.maybe_create(config)
    self.adv = adv_lib.maybe_create(config)
    self.train_step = functools.partial(train_step, model=self.model, spec=self.spec,
                                        tx=self.tx, config=config, crt=self.crt,
                                        adv=self.adv)
    self._evaluator = None

  def _check_trainable(self):
    groups = state_lib.trainable_groups(self.config.train.trainable)
    if not groups:
      return
    names = sorted(jax.eval_shape(lambda rng: self.model.init(rng, self.dummy_images()),
                                  jax.random.key(0))['params'])
    unknown = [g for g in groups if g not in names]
    if unknown:
      raise ValueError(f'train.trainable={self.config.train.trainable!r}: no parameter group '
                       f'{unknown[0]!r} in a {self.config.model.name!r} tokenizer; its groups '
                       f'are {names}')

  def warm_start(self, state, state_shardings):
    """state with params and EMA params from train.init_from (unchanged when unset)."""
    t = self.config.train
    if not t.init_from:
      return state
    source = runs.load_config(t.init_from)
    runs.expect_stage(source, t.init_from, 'tokenizer', 'train.init_from')
    if source.model.name != self.config.model.name:
      raise ValueError(f'train.init_from={t.init_from!r} is a {source.model.name!r} run; this '
                       f'config builds a {self.config.model.name!r} tokenizer')
    return runs.warm_start(state, state_shardings, t.init_from, t.init_from_step)

  def dummy_images(self, batch_size=1):
    return runs.dummy_images(self.config, batch_size)

  def boxed_state(self, rng):
    """State with nn.Partitioned params (for eval_shape -> shardings)."""
    params = self.model.init(rng, self.dummy_images())['params']
    model_state = {book.usage_key: codebook_restart.init_usage(book.size)
                   for book in self.spec.codebooks(self.config)}
    if self.crt is not None:
      model_state[crt_lib.KEY] = self.crt.boxed_state(jax.random.fold_in(rng, 1))
    if self.adv is not None:
      model_state[adv_lib.KEY] = self.adv.boxed_state(jax.random.fold_in(rng, 2),
                                                      self.dummy_images())
    return state_lib.create(params, self.tx, self.config.optim.ema_decay > 0, model_state)

  def init_state(self, rng):
    return nn.meta.unbox(self.boxed_state(rng))

  def load_frozen(self):
    # LPIPS is a loss term and an eval metric, so its params are always loaded.
    return perceptual.frozen_params(self.config.loss)

  def evaluate(self, state, frozen, *, step: int, workdir: str | None):
    """Metrics over data.eval_split (mean PSNR/SSIM/LPIPS, codebook usage) + a PNG grid."""
    if self._evaluator is None:
      self._evaluator = tokenizer_eval.TokenizerEvaluator(self.model, self.spec, self.config,
                                                          self.mesh)
    return self._evaluator(state_lib.eval_params(state), frozen, step=step, workdir=workdir)

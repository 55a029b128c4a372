"""Tokenizer stage: the pure train step (reconstruction + LPIPS + quantizer losses) and eval.

`train_step(state, frozen, batch, rng, *, model, tx, config)` is pure; the shared loop binds
the keyword arguments and jits it with shardings. `frozen` holds the LPIPS network's params.
"""
import functools
import os

import flax.linen as nn
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sbt_jax import sharding
from sbt_jax.data import pipeline
from sbt_jax.evaluators import image_grid
from sbt_jax.evaluators import lpips as lpips_lib
from sbt_jax.evaluators import reconstruction
from sbt_jax.models import codebook_restart
from sbt_jax.models import quantizer as quantizer_lib
from sbt_jax.models import titok
from sbt_jax.trainers import state as state_lib


def tokenizer_loss(params, frozen, batch, *, model, config):
  """Scalar loss and metrics for one batch of images in [-1, 1]."""
  x_BxHxWxC = batch['image']
  recon_BxHxWxC, aux = model.apply({'params': params}, x_BxHxWxC)
  w = config.loss
  l1 = jnp.mean(jnp.abs(recon_BxHxWxC - x_BxHxWxC))
  l2 = jnp.mean(jnp.square(recon_BxHxWxC - x_BxHxWxC))
  loss = w.l1_weight * l1 + w.l2_weight * l2 + w.quantizer_weight * aux['quantizer_loss']
  metrics = {'l1': l1, 'l2': l2, 'quantizer_loss': aux['quantizer_loss'],
             'commit_loss': aux['commit_loss']}
  if w.lpips_weight > 0:
    lpips = jnp.mean(lpips_lib.lpips_distance(
        frozen['lpips'], recon_BxHxWxC, x_BxHxWxC, dtype=model.dtype))
    loss = loss + w.lpips_weight * lpips
    metrics['lpips'] = lpips
  metrics.update(quantizer_lib.codebook_stats(aux['ids'], config.model.codebook_size))
  metrics['loss'] = loss
  return loss, (metrics, aux)


def _restart_dead_codes(state, aux, rng, config):
  """Updates the usage EMA and, on restart steps, moves dead codes onto batch outputs."""
  m = config.model
  usage_K = codebook_restart.update_usage(state.model_state['codebook_usage'], aux['ids'],
                                          m.usage_decay)
  z_NxT = aux['z'].reshape(-1, aux['z'].shape[-1])
  enabled = state.step % m.dead_code_restart_every == 0
  codebook = state.params['quantizer']['codebook']
  codebook, usage_K, dead_K = codebook_restart.restart(
      codebook, usage_K, z_NxT, rng, threshold=m.dead_code_threshold, enabled=enabled)
  params = _with_codebook(state.params, codebook)
  ema = state.ema_params
  if ema is not None:  # Restarted codes jump in the EMA copy too, so eval sees them.
    ema_codebook = jnp.where(dead_K[:, None], codebook, ema['quantizer']['codebook'])
    ema = _with_codebook(ema, ema_codebook)
  state = state.replace(params=params, ema_params=ema,
                        model_state={**state.model_state, 'codebook_usage': usage_K})
  return state, jnp.sum(dead_K)


def _with_codebook(params, codebook):
  return {**params, 'quantizer': {**params['quantizer'], 'codebook': codebook}}


def train_step(state, frozen, batch, rng, *, model, tx, config):
  grad_fn = jax.value_and_grad(
      functools.partial(tokenizer_loss, model=model, config=config), has_aux=True)
  (_, (metrics, aux)), grads = grad_fn(state.params, frozen, batch)
  metrics['grad_norm'] = optax.global_norm(grads)
  metrics['learning_rate'] = state_lib.learning_rate_schedule(
      config.optim, config.train.num_steps)(state.step)
  new_state = state_lib.apply_gradients(state, grads, tx, config.optim.ema_decay)
  if config.model.dead_code_restart_every > 0:
    new_state, metrics['codes_restarted'] = _restart_dead_codes(new_state, aux, rng, config)
  return new_state, metrics


def eval_step(params, frozen, batch, *, model):
  """Reconstruction, ids and per-image metrics for one eval batch."""
  recon_BxHxWxC, aux = model.apply({'params': params}, batch['image'])
  metrics = reconstruction.per_image_metrics(batch['image'], recon_BxHxWxC, frozen['lpips'])
  return recon_BxHxWxC, aux['ids'], metrics


class TokenizerTask:
  """What the shared loop needs from the tokenizer stage."""

  def __init__(self, config: ml_collections.ConfigDict, mesh):
    self.config = config
    self.mesh = mesh
    self.model = titok.build_tokenizer(config)
    self.tx = state_lib.make_optimizer(config.optim, config.train.num_steps)
    self.train_step = functools.partial(train_step, model=self.model, tx=self.tx,
                                        config=config)
    self._eval_step = None

  def dummy_images(self, batch_size=1):
    d = self.config.data
    return jnp.zeros((batch_size, d.image_size, d.image_size, d.channels), jnp.float32)

  def boxed_state(self, rng):
    """State with nn.Partitioned params (for eval_shape -> shardings)."""
    params = self.model.init(rng, self.dummy_images())['params']
    model_state = {'codebook_usage': codebook_restart.init_usage(
        self.config.model.codebook_size)}
    return state_lib.create(params, self.tx, self.config.optim.ema_decay > 0, model_state)

  def init_state(self, rng):
    return nn.meta.unbox(self.boxed_state(rng))

  def load_frozen(self):
    # LPIPS is a loss term and an eval metric, so its params are always loaded.
    return {'lpips': lpips_lib.load_params('vgg16')}

  def evaluate(self, state, frozen, *, step: int, workdir: str | None):
    """Metrics over data.eval_split (mean PSNR/SSIM/LPIPS, codebook usage) + a PNG grid."""
    cfg = self.config
    if self._eval_step is None:
      batch_sh = sharding.batch_sharding(self.mesh)
      self._eval_step = jax.jit(functools.partial(eval_step, model=self.model),
                                out_shardings=(batch_sh, batch_sh, batch_sh))
    params = state_lib.eval_params(state)
    loader = pipeline.make_eval_loader(
        cfg.data, num_images=cfg.train.eval_num_images,
        process_index=jax.process_index(), process_count=jax.process_count())
    sums, count = {}, 0.0
    counts_K = np.zeros(cfg.model.codebook_size, np.int64)
    grid_rows = None
    for local_batch in loader:
      batch = sharding.global_batch(local_batch, self.mesh)
      recon, ids, metrics = self._eval_step(params, frozen, batch)
      mask = np.asarray(multihost_utils.process_allgather(batch['mask'],
                                                                           tiled=True))
      metrics = multihost_utils.process_allgather(metrics, tiled=True)
      for k, v in metrics.items():
        sums[k] = sums.get(k, 0.0) + float(np.sum(np.asarray(v, np.float64) * mask))
      count += float(mask.sum())
      ids = np.asarray(multihost_utils.process_allgather(ids, tiled=True))
      counts_K += np.bincount(ids[mask > 0].reshape(-1), minlength=cfg.model.codebook_size)
      if grid_rows is None:
        n = cfg.train.grid_num_images
        images = multihost_utils.process_allgather(batch['image'], tiled=True)
        recons = multihost_utils.process_allgather(recon, tiled=True)
        grid_rows = [np.asarray(images)[:n], np.clip(np.asarray(recons)[:n], -1, 1)]
    results = {f'eval/{k}': v / max(count, 1.0) for k, v in sums.items()}
    probs = counts_K / max(counts_K.sum(), 1)
    nz = probs[probs > 0]
    results['eval/codebook_usage'] = float((counts_K > 0).mean())
    results['eval/codebook_perplexity'] = float(np.exp(-(nz * np.log(nz)).sum()))
    results['eval/num_images'] = count
    if workdir is not None and jax.process_index() == 0 and grid_rows is not None:
      path = os.path.join(workdir, 'images', f'recon_{step:07d}.png')
      image_grid.save_grid(path, grid_rows, scale=2 if cfg.data.image_size < 64 else 1)
    return results

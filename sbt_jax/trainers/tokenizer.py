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
from sbt_jax.models import registry
from sbt_jax.models import tatok as tatok_lib
from sbt_jax.trainers import crt as crt_lib
from sbt_jax.trainers import state as state_lib


def reconstruction_loss(recon_BxHxWxC, x_BxHxWxC, frozen, w, dtype, prefix=''):
  """L1 + L2 (+ LPIPS) with config.loss weights; (loss, metrics named prefix + term)."""
  l1 = jnp.mean(jnp.abs(recon_BxHxWxC - x_BxHxWxC))
  l2 = jnp.mean(jnp.square(recon_BxHxWxC - x_BxHxWxC))
  loss = w.l1_weight * l1 + w.l2_weight * l2
  metrics = {f'{prefix}l1': l1, f'{prefix}l2': l2}
  if w.lpips_weight > 0:
    lpips = jnp.mean(lpips_lib.lpips_distance(frozen['lpips'], recon_BxHxWxC, x_BxHxWxC,
                                              dtype=dtype))
    loss = loss + w.lpips_weight * lpips
    metrics[f'{prefix}lpips'] = lpips
  return loss, metrics


# SelfBootTok's and TaTok's extra terms: aux key -> config.loss weight field.
_AUX_TERMS = (('align_loss', 'align_weight'), ('local_ce', 'local_ce_weight'),
              ('ot_cost', 'ot_cost_weight'), ('patch_ce', 'patch_ce_weight'))
# Logged as they are (no gradient role).
_AUX_METRICS = ('local_accuracy', 'ot_iterations', 'ot_converged', 'ot_plan_entropy',
                'soft_assignment_entropy', 'patch_entropy', 'kept_fraction')


def tokenizer_loss(params, frozen, batch, rng=None, *, model, config):
  """Scalar loss and metrics for one batch of images in [-1, 1] (rng: TaTok's rates)."""
  x_BxHxWxC = batch['image']
  args = ()
  if config.model.name == 'tatok':
    args = (tatok_lib.sample_rates(rng, x_BxHxWxC.shape[0], config.model.tatok),)
  recon_BxHxWxC, aux = model.apply({'params': params}, x_BxHxWxC, *args)
  w = config.loss
  loss, metrics = reconstruction_loss(recon_BxHxWxC, x_BxHxWxC, frozen, w, model.dtype)
  loss = loss + w.quantizer_weight * aux['quantizer_loss']
  metrics.update(quantizer_loss=aux['quantizer_loss'], commit_loss=aux['commit_loss'])
  for key, weight in _AUX_TERMS:
    if key in aux:
      loss = loss + w[weight] * aux[key]
      metrics[key] = aux[key]
  metrics.update({k: aux[k] for k in _AUX_METRICS if k in aux})
  if 'recon_generate' in aux:
    gen_loss, gen_metrics = reconstruction_loss(aux['recon_generate'], x_BxHxWxC, frozen, w,
                                                model.dtype, prefix='generate_')
    loss = loss + w.w_generate * gen_loss
    metrics.update(gen_metrics)
  metrics.update(quantizer_lib.codebook_stats(aux['ids'], config.model.codebook_size))
  if 'local_ids' in aux:
    local = quantizer_lib.codebook_stats(aux['local_ids'], config.model.local_codebook_size)
    metrics.update({f'local_{k}': v for k, v in local.items()})
  if 'patch_ids' in aux:
    patch = quantizer_lib.codebook_stats(aux['patch_ids'],
                                         config.model.tatok.patch_codebook_size)
    metrics.update({f'patch_{k}': v for k, v in patch.items()})
    metrics['tokens_per_image'] = jnp.mean(aux['tokens_per_image'])
  metrics['loss'] = loss
  return loss, (metrics, aux)


def codebooks(config):
  """(param name, aux ids key, aux z key, usage key, size) of every codebook to restart."""
  m = config.model
  books = [('quantizer', 'ids', 'z', 'codebook_usage', m.codebook_size)]
  if m.name == 'selfboottok':
    books.append(('local_quantizer', 'local_ids', 'local_z', 'local_codebook_usage',
                  m.local_codebook_size))
  if m.name == 'tatok':
    books.append(('patch_quantizer', 'patch_ids', 'patch_z', 'patch_codebook_usage',
                  m.tatok.patch_codebook_size))
  return books


def _restart_dead_codes(state, aux, rng, config):
  """Updates usage EMAs and, on restart steps, moves dead codes onto batch outputs."""
  m = config.model
  enabled = state.step % m.dead_code_restart_every == 0
  params, ema, model_state = state.params, state.ema_params, dict(state.model_state)
  restarted = 0
  for i, (name, ids_key, z_key, usage_key, _) in enumerate(codebooks(config)):
    usage_K = codebook_restart.update_usage(model_state[usage_key], aux[ids_key],
                                            m.usage_decay)
    z_NxT = aux[z_key].reshape(-1, aux[z_key].shape[-1])
    codebook, usage_K, dead_K = codebook_restart.restart(
        params[name]['codebook'], usage_K, z_NxT, jax.random.fold_in(rng, i),
        threshold=m.dead_code_threshold, enabled=enabled)
    params = _with_codebook(params, name, codebook)
    if ema is not None:  # Restarted codes jump in the EMA copy too, so eval sees them.
      ema = _with_codebook(ema, name, jnp.where(dead_K[:, None], codebook,
                                                ema[name]['codebook']))
    model_state[usage_key] = usage_K
    restarted = restarted + jnp.sum(dead_K)
  return state.replace(params=params, ema_params=ema, model_state=model_state), restarted


def _with_codebook(params, name, codebook):
  return {**params, name: {**params[name], 'codebook': codebook}}


def train_step(state, frozen, batch, rng, *, model, tx, config, crt=None):
  """`crt` (a trainers.crt.CrtRegularizer) adds the CRT term and updates its predictor."""
  loss_fn = functools.partial(tokenizer_loss, model=model, config=config)
  loss_rng, restart_rng = jax.random.split(rng)
  (_, (metrics, aux)), grads, crt_grads = crt_lib.value_and_grads(loss_fn, state, crt,
                                                                  frozen, batch, loss_rng)
  if crt is not None:
    metrics['crt_grad_norm'] = optax.tree.norm(crt_grads)
    state = crt_lib.with_predictor_update(state, crt, crt_grads)
  metrics['grad_norm'] = optax.tree.norm(grads)
  metrics['learning_rate'] = state_lib.learning_rate_schedule(
      config.optim, config.train.num_steps)(state.step)
  new_state = state_lib.apply_gradients(state, grads, tx, config.optim.ema_decay)
  if config.model.dead_code_restart_every > 0:
    new_state, metrics['codes_restarted'] = _restart_dead_codes(new_state, aux, restart_rng,
                                                                config)
  return new_state, metrics


def eval_step(params, frozen, batch, *, model, temperature=0.0, rng=None):
  """Compress-mode reconstruction, ids and per-image metrics for one eval batch.

  SelfBootTok also reports generate mode: decoding from the global ids alone with the
  aligner's local ids (argmax when temperature is 0, else sampled with `rng`), as
  `generate_*` metrics, plus the aligner's per-image local-id cross-entropy (bits/token).
  TaTok reconstructs at its eval rate (model.tatok.eval_rate) and reports tokens per image.
  """
  x_BxHxWxC = batch['image']
  recon_BxHxWxC, aux = model.apply({'params': params}, x_BxHxWxC)
  metrics = reconstruction.per_image_metrics(x_BxHxWxC, recon_BxHxWxC, frozen['lpips'])
  ids = {'ids': aux['ids']}
  if 'patch_ids' in aux:
    ids['patch_ids'] = aux['patch_ids']
    metrics['tokens_per_image'] = aux['tokens_per_image']
  if 'local_ids' in aux:
    ids['local_ids'] = aux['local_ids']
    logits = model.apply({'params': params}, aux['ids'], method='local_logits')
    ce_BxL = -jnp.take_along_axis(jax.nn.log_softmax(logits), aux['local_ids'][..., None],
                                  -1)[..., 0]
    metrics['local_ce_bits'] = jnp.mean(ce_BxL, axis=1) / jnp.log(2.0)
    gen_BxHxWxC, pred = model.apply({'params': params}, aux['ids'], rng, temperature,
                                    method='decode_generate')
    metrics['local_accuracy'] = jnp.mean((pred == aux['local_ids']).astype(jnp.float32), 1)
    gen = reconstruction.per_image_metrics(x_BxHxWxC, gen_BxHxWxC, frozen['lpips'])
    metrics.update({f'generate_{k}': v for k, v in gen.items()})
  return recon_BxHxWxC, ids, metrics


def usage_summary(counts_K: np.ndarray, prefix: str) -> dict:
  """Codes used, usage share, perplexity and entropy (bits) of an id histogram."""
  probs = counts_K / max(counts_K.sum(), 1)
  nz = probs[probs > 0]
  entropy = float(-(nz * np.log(nz)).sum())
  return {f'{prefix}codebook_usage': float((counts_K > 0).mean()),
          f'{prefix}codes_used': float((counts_K > 0).sum()),
          f'{prefix}codebook_perplexity': float(np.exp(entropy)),
          f'{prefix}entropy_bits': entropy / np.log(2.0)}


class TokenizerTask:
  """What the shared loop needs from the tokenizer stage."""

  def __init__(self, config: ml_collections.ConfigDict, mesh):
    self.config = config
    self.mesh = mesh
    # The config eval reads model sizes from (the aligner stage's is the tokenizer's).
    self.eval_config = config
    self.model = registry.build_tokenizer(config)
    self.tx = state_lib.make_optimizer(config.optim, config.train.num_steps)
    self.crt = crt_lib.maybe_create(config)
    self.train_step = functools.partial(train_step, model=self.model, tx=self.tx,
                                        config=config, crt=self.crt)
    self._eval_step = None

  def dummy_images(self, batch_size=1):
    d = self.config.data
    return jnp.zeros((batch_size, d.image_size, d.image_size, d.channels), jnp.float32)

  def boxed_state(self, rng):
    """State with nn.Partitioned params (for eval_shape -> shardings)."""
    params = self.model.init(rng, self.dummy_images())['params']
    model_state = {usage_key: codebook_restart.init_usage(size)
                   for _, _, _, usage_key, size in codebooks(self.config)}
    if self.crt is not None:
      model_state[crt_lib.KEY] = self.crt.boxed_state(jax.random.fold_in(rng, 1))
    return state_lib.create(params, self.tx, self.config.optim.ema_decay > 0, model_state)

  def init_state(self, rng):
    return nn.meta.unbox(self.boxed_state(rng))

  def load_frozen(self):
    # LPIPS is a loss term and an eval metric, so its params are always loaded.
    return {'lpips': lpips_lib.load_params('vgg16')}

  def full_params(self, state, frozen):
    """The tokenizer params eval uses (EMA if kept)."""
    del frozen
    return state_lib.eval_params(state)

  def evaluate(self, state, frozen, *, step: int, workdir: str | None):
    """Metrics over data.eval_split (mean PSNR/SSIM/LPIPS, codebook usage) + a PNG grid."""
    cfg = self.eval_config
    if self._eval_step is None:
      batch_sh = sharding.batch_sharding(self.mesh)
      self._eval_step = jax.jit(functools.partial(eval_step, model=self.model),
                                out_shardings=(batch_sh, batch_sh, batch_sh))
    params = self.full_params(state, frozen)
    loader = pipeline.make_eval_loader(
        cfg.data, num_images=cfg.train.eval_num_images,
        process_index=jax.process_index(), process_count=jax.process_count())
    sums, count = {}, 0.0
    counts = {ids_key: np.zeros(size, np.int64)
              for _, ids_key, _, _, size in codebooks(cfg)}
    grid_rows = None
    for local_batch in loader:
      batch = sharding.global_batch(local_batch, self.mesh)
      recon, ids, metrics = self._eval_step(params, frozen, batch)
      mask = np.asarray(multihost_utils.process_allgather(batch['mask'], tiled=True))
      metrics = multihost_utils.process_allgather(metrics, tiled=True)
      for k, v in metrics.items():
        sums[k] = sums.get(k, 0.0) + float(np.sum(np.asarray(v, np.float64) * mask))
      count += float(mask.sum())
      for key, ids_BxG in multihost_utils.process_allgather(ids, tiled=True).items():
        ids_BxG = np.asarray(ids_BxG)[mask > 0].reshape(-1)
        counts[key] += np.bincount(ids_BxG, minlength=len(counts[key]))
      if grid_rows is None:
        n = cfg.train.grid_num_images
        images = multihost_utils.process_allgather(batch['image'], tiled=True)
        recons = multihost_utils.process_allgather(recon, tiled=True)
        grid_rows = [np.asarray(images)[:n], np.clip(np.asarray(recons)[:n], -1, 1)]
    results = {f'eval/{k}': v / max(count, 1.0) for k, v in sums.items()}
    results.update({f'eval/{k}': v for k, v in usage_summary(counts['ids'], '').items()})
    for key, prefix in (('local_ids', 'local_'), ('patch_ids', 'patch_')):
      if key in counts:
        results.update({f'eval/{k}': v for k, v in usage_summary(counts[key], prefix).items()})
    results['eval/num_images'] = count
    if workdir is not None and jax.process_index() == 0 and grid_rows is not None:
      path = os.path.join(workdir, 'images', f'recon_{step:07d}.png')
      image_grid.save_grid(path, grid_rows, scale=2 if cfg.data.image_size < 64 else 1)
    return results

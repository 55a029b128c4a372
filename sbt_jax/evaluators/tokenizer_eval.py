"""Eval during training of a tokenizer (tokenizer and aligner stages): per-image metrics
over data.eval_split, codebook usage of every codebook, and a PNG reconstruction grid.

What a family adds (SelfBootTok's generate mode, TaTok's tokens per image) comes from its
spec's `eval_outputs`; nothing here knows the families.
"""
import functools

import jax
from jax.experimental import multihost_utils
import numpy as np

from sbt_jax import paths
from sbt_jax import sharding
from sbt_jax.data import pipeline
from sbt_jax.evaluators import image_grid
from sbt_jax.evaluators import reconstruction


def eval_step(params, frozen, batch, *, model, spec, temperature=0.0, rng=None):
  """(compress-mode reconstruction, {ids key: ids}, per-image metrics) of one eval batch.

  The spec's other reconstructions (e.g. SelfBootTok's generate mode: argmax local ids when
  temperature is 0, else sampled with `rng`) are scored too, as `<prefix><metric>`.
  """
  x_BxHxWxC = batch['image']
  recon_BxHxWxC, aux = model.apply({'params': params}, x_BxHxWxC)
  metrics = reconstruction.per_image_metrics(x_BxHxWxC, recon_BxHxWxC, frozen['lpips'])
  ids, extra, others = spec.eval_outputs(model, params, x_BxHxWxC, aux, rng, temperature)
  metrics.update(extra)
  for prefix, images in others.items():
    scores = reconstruction.per_image_metrics(x_BxHxWxC, images, frozen['lpips'])
    metrics.update({f'{prefix}{k}': v for k, v in scores.items()})
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


class TokenizerEvaluator:
  """Jitted eval of one tokenizer model on a mesh; `config` gives data, train.* and the
  codebook sizes (for the aligner stage: the frozen tokenizer's model section)."""

  def __init__(self, model, spec, config, mesh):
    self.model, self.spec, self.config, self.mesh = model, spec, config, mesh
    batch_sh = sharding.batch_sharding(mesh)
    self._step = jax.jit(functools.partial(eval_step, model=model, spec=spec),
                         out_shardings=(batch_sh, batch_sh, batch_sh))

  def __call__(self, params, frozen, *, step: int, workdir: str | None) -> dict:
    """Mean metrics (eval/...) over the split; writes images/recon_<step>.png."""
    cfg = self.config
    loader = pipeline.make_eval_loader(
        cfg.data, num_images=cfg.train.eval_num_images,
        process_index=jax.process_index(), process_count=jax.process_count())
    books = self.spec.codebooks(cfg)
    sums, count, grid_rows = {}, 0.0, None
    counts = {b.ids_key: np.zeros(b.size, np.int64) for b in books}
    for local_batch in loader:
      batch = sharding.global_batch(local_batch, self.mesh)
      recon, ids, metrics = self._step(params, frozen, batch)
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
    for book in books:
      usage = usage_summary(counts[book.ids_key], book.prefix)
      results.update({f'eval/{k}': v for k, v in usage.items()})
    results['eval/num_images'] = count
    if workdir is not None and jax.process_index() == 0 and grid_rows is not None:
      path = paths.join(workdir, 'images', f'recon_{step:07d}.png')
      image_grid.save_grid(path, grid_rows, scale=2 if cfg.data.image_size < 64 else 1)
    return results

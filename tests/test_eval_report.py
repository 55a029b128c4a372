"""Evaluation report: metrics.jsonl parsing, the plot over steps, markdown and JSON files."""
import json
import os

import numpy as np
from PIL import Image

from sbt_jax.evaluators import report


def _results(metrics):
  return {'workdir': '/w', 'step': 1500, 'split': 'test', 'num_images': 10_000,
          'num_samples': 0, 'metrics': metrics,
          'metric_definitions': {k: v for k, v in report.METRIC_DEFINITIONS.items()
                                 if any(report.base_name(m) == k for m in metrics)},
          'inception_weights': None, 'devices': '1 x cpu', 'timing': {'total_sec': 12.0}}


def test_metrics_jsonl_series_and_plot(tmp_path):
  rows = [{'step': 50, 'train/loss': 2.0, 'train/l1': 1.0},
          {'step': 500, 'eval/psnr': 13.0, 'eval/lpips': 0.3, 'eval/num_images': 10.0},
          {'step': 100, 'train/loss': 1.5},
          {'step': 1000, 'eval/psnr': 16.5, 'eval/lpips': 0.2},
          {'step': 500, 'eval/psnr': 14.0}]  # Step 500 again (a resumed run): last wins.
  path = tmp_path / 'metrics.jsonl'
  path.write_text('\n'.join(json.dumps(r) for r in rows) + '\n{"step": 15')  # Cut last line.
  series = report.read_metrics_jsonl(str(path))
  assert series == {'train/loss': ([50, 100], [2.0, 1.5]),
                    'eval/psnr': ([500, 1000], [14.0, 16.5]),
                    'eval/lpips': ([500, 1000], [0.3, 0.2])}
  png = report.plot_metrics(series, str(tmp_path / 'plot.png'))
  width, height = Image.open(png).size
  assert width >= 3 * 300 and height > 200  # Three panels side by side.
  assert report.read_metrics_jsonl(str(tmp_path / 'missing.jsonl')) == {}
  assert report.plot_metrics({}, str(tmp_path / 'none.png')) is None


def test_write_all_files_and_partial_names(tmp_path):
  workdir = tmp_path / 'w'
  workdir.mkdir()
  (workdir / 'metrics.jsonl').write_text(json.dumps({'step': 500, 'eval/psnr': 14.0}) + '\n')
  metrics = {'psnr': 16.5, 'rfd_vgg': 12.25, 'gfid_partial@1000': 30.0,
             'is_gen_partial@1000': 3.0, 'is_gen_partial@1000_std': 0.1}
  grid = [np.zeros((4, 28, 28, 1), np.float32), np.ones((4, 28, 28, 1), np.float32)]
  files = report.write_all(str(tmp_path / 'out'), _results(metrics), workdir=str(workdir),
                           recon_grid=grid)
  assert sorted(os.path.basename(p) for p in files.values()) == [
      'metrics_over_steps.png', 'recon_grid.png', 'report.md', 'results.json']
  md = open(files['report']).read()
  assert '| psnr | 16.5 | PSNR (dB, dm-pix)' in md
  assert '| gfid_partial@1000 | 30 | FID of class-balanced' in md and 'fewer samples' in md
  assert '| is_gen_partial@1000_std | 0.1 | std over splits' in md
  assert '![Metrics over training](metrics_over_steps.png)' in md
  assert '## Samples' not in md
  with open(files['json']) as f:
    saved = json.load(f)
  assert saved['metrics'] == metrics and saved['files']['report'] == files['report']
  assert set(saved['metric_definitions']) == {'psnr', 'rfd_vgg', 'gfid', 'is_gen'}
  line = report.summary_line({**saved})
  assert 'psnr 16.5' in line and 'std' not in line and line.endswith('report.md')

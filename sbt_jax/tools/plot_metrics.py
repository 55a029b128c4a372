"""Curves of one or more runs' metrics.jsonl as a PNG, and a markdown table at milestones.

  python -m sbt_jax.tools.plot_metrics --workdir workdirs/titok_fmnist --out curve.png \
      [--workdir W2 ...] [--labels a,b] [--metrics train/loss,eval/psnr] \
      [--milestones 500,1000,1500]

metrics.jsonl (written by the training loop) has rows {"step": s, name: value, ...}: train/*
means every train.log_every steps, eval/* at train.eval_every and the last step. The PNG has
one panel per metric (value vs step), one line per run. Without --metrics: train/loss and
every eval/* metric any run logged (eval/num_images left out).

The table (stdout) gives each metric at the logged step nearest to each milestone (default:
the last step any run logged); a value from another step than the milestone says which.
Bad input (a missing workdir or metrics.jsonl, a metric no run logged, an unwritable --out)
prints one line to stderr and exits with status 2. Needs matplotlib, not JAX.
"""
import argparse
import io
import math
import sys

from sbt_jax import metrics_file
from sbt_jax import paths

_SKIPPED = ('eval/num_images',)


class InputError(Exception):
  """Bad command-line input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):

  def error(self, message):
    raise InputError(message)


def read_metrics(workdir: str) -> dict[str, dict[int, float]]:
  """{metric: {step: value}} of workdir/metrics.jsonl; a repeated step keeps its last value."""
  if not paths.isdir(workdir):
    raise InputError(f'no such workdir: {workdir}')
  path = paths.join(workdir, 'metrics.jsonl')
  if not paths.isfile(path):
    raise InputError(f'no metrics.jsonl in {workdir}')
  series = metrics_file.read(path)
  if not series:
    raise InputError(f'no metric rows in {path}')
  return series


def choose_metrics(runs: dict, requested: list[str] | None) -> list[str]:
  logged = sorted(set().union(*runs.values()))
  if requested:
    unknown = [m for m in requested if m not in logged]
    if unknown:
      raise InputError(f'unknown metric {unknown[0]!r}: no run logged it (logged: '
                       f'{", ".join(logged)})')
    return requested
  chosen = (['train/loss'] if 'train/loss' in logged else []) + [
      m for m in logged if m.startswith('eval/') and m not in _SKIPPED]
  if not chosen:
    raise InputError('no train/loss or eval/* metric logged; choose some with --metrics '
                     f'(logged: {", ".join(logged)})')
  return chosen


def nearest_step(steps, target: int) -> int:
  """The logged step closest to target (the earlier one on a tie)."""
  return min(steps, key=lambda s: (abs(s - target), s))


def milestone_table(runs: dict, metrics: list[str], milestones: list[int]) -> str:
  """Markdown: one row per (run, milestone), one column per metric."""
  lines = ['| run | step | ' + ' | '.join(metrics) + ' |',
           '|---|---:|' + '---:|' * len(metrics)]
  for label, series in runs.items():
    for milestone in milestones:
      cells = []
      for m in metrics:
        if m not in series:
          cells.append('-')
          continue
        step = nearest_step(series[m], milestone)
        cell = f'{series[m][step]:.4g}'
        cells.append(cell if step == milestone else f'{cell} (step {step})')
      lines.append(f'| {label} | {milestone} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def plot(runs: dict, metrics: list[str], out: str) -> None:
  """One panel per metric, every run that logged it as a labelled line."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  cols = min(3, len(metrics))
  rows = math.ceil(len(metrics) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3 * rows), squeeze=False)
  for ax, m in zip(axes.flat, metrics):
    for label, series in runs.items():
      if m in series:
        steps = sorted(series[m])
        ax.plot(steps, [series[m][s] for s in steps], label=label,
                marker='o' if len(steps) <= 30 else None, markersize=3)
    ax.set_title(m, fontsize=9)
    ax.set_xlabel('step', fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  for ax in list(axes.flat)[len(metrics):]:
    ax.axis('off')
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=100)
  plt.close(fig)
  paths.write_bytes(out, buffer.getvalue())


def _int_list(text: str) -> list[int]:
  try:
    values = [int(v) for v in text.split(',') if v.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f'not a comma-separated list of steps: {text!r}')
  if not values or min(values) < 0:
    raise argparse.ArgumentTypeError(f'not a comma-separated list of steps: {text!r}')
  return values


def _name_list(text: str) -> list[str]:
  return [v.strip() for v in text.split(',') if v.strip()]


def _labels(workdirs: list[str], labels: list[str] | None) -> list[str]:
  if labels:
    if len(labels) != len(workdirs) or len(set(labels)) != len(labels):
      raise InputError(f'--labels needs {len(workdirs)} distinct names, one per --workdir')
    return labels
  names = [paths.name(w) for w in workdirs]
  return names if len(set(names)) == len(names) else list(workdirs)


def main(argv=None) -> None:
  parser = _Parser(prog='python -m sbt_jax.tools.plot_metrics',
                   description=__doc__.split('\n', 1)[0])
  parser.add_argument('--workdir', action='append', required=True,
                      help='a run directory holding metrics.jsonl (repeat to overlay runs)')
  parser.add_argument('--out', required=True, help='PNG file to write')
  parser.add_argument('--labels', type=_name_list, help='legend names, one per --workdir')
  parser.add_argument('--metrics', type=_name_list,
                      help='comma-separated names (default: train/loss and every eval/*)')
  parser.add_argument('--milestones', type=_int_list,
                      help='comma-separated steps for the table (default: the last logged)')
  try:
    args = parser.parse_args(argv)
    if len(set(args.workdir)) != len(args.workdir):
      raise InputError('the same --workdir is given twice')
    labels = _labels(args.workdir, args.labels)
    runs = {label: read_metrics(w) for label, w in zip(labels, args.workdir)}
    metrics = choose_metrics(runs, args.metrics)
  except InputError as e:
    print(f'plot_metrics: error: {e}', file=sys.stderr)
    sys.exit(2)
  milestones = args.milestones or [
      max(max(series[m]) for series in runs.values() for m in metrics if m in series)]
  try:
    plot(runs, metrics, args.out)
  except OSError as e:
    print(f'plot_metrics: error: cannot write {args.out}: {e.strerror or e}', file=sys.stderr)
    sys.exit(2)
  print(milestone_table(runs, metrics, milestones))
  print(f'\nwrote {args.out}')


if __name__ == '__main__':
  main()

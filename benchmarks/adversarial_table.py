"""Issue 18's table from the runs of benchmarks/adversarial_fmnist.sh: mean +- std over seeds.

  python benchmarks/adversarial_table.py [--root workdirs/adv] [--seeds 0,1,2]

Reads (nothing is recomputed):
  <root>/titok8{,_adv,_ft}_s<seed>/eval/test_all/results.json   PSNR, SSIM, LPIPS, rFD-VGG
  <root>/titok8{,_adv,_ft}_s<seed>/metrics.jsonl                the last train/disc/* values
  <root>/gen_titok8{,_adv}_s<seed>/eval_fd/n10000*/results.json gFD-VGG of 10,000 samples
    (the fine-tune's gFD: the base run's generator, its ids decoded by the fine-tuned decoder)
Prints a markdown table (std: sample standard deviation, ddof = 1) and appends one record
per arm and metric to benchmarks/results.jsonl.
"""
import argparse
import datetime
import os
import shlex
import statistics
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

from benchmarks import records as records_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import throughput  # pylint: disable=g-import-not-at-top,wrong-import-position

ARMS = (('titok8', 'L1 + L2 (no adversarial recipe)'),
        ('titok8_adv', 'with the adversarial recipe (D from step 250)'),
        ('titok8_ft', 'no recipe + 500 steps of decoder fine-tuning with it'))
RECON = (('psnr', 'PSNR (dB)'), ('ssim', 'SSIM'), ('lpips', 'LPIPS'), ('rfd_vgg', 'rFD-VGG'))


_json = records_lib.read_json


def _gfd(root, arm, seed):
  if arm == 'titok8_ft':
    path = os.path.join(root, f'gen_titok8_s{seed}', 'eval_fd', f'n10000_titok8_ft_s{seed}')
  else:
    path = os.path.join(root, f'gen_{arm}_s{seed}', 'eval_fd', 'n10000')
  (name, value), = [(k, v) for k, v in _json(os.path.join(path, 'results.json'))
                    ['metrics'].items() if k.startswith('gfd_vgg')]
  return name, value


def run_values(root, arm, seed) -> dict:
  run = os.path.join(root, f'{arm}_s{seed}')
  recon = _json(os.path.join(run, 'eval', 'test_all', 'results.json'))
  out = {k: recon['metrics'][k] for k, _ in RECON}
  out['gfd_name'], out['gfd_vgg'] = _gfd(root, arm, seed)
  wins = records_lib.last_metric(os.path.join(run, 'metrics.jsonl'), 'train/disc/wins')
  out['disc_wins'] = wins[1] if wins else None
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--root', default=os.path.join(_ROOT, 'workdirs', 'adv'))
  p.add_argument('--seeds', default='0,1,2')
  p.add_argument('--out', default=os.path.join(_ROOT, 'benchmarks', 'results.jsonl'))
  args = p.parse_args(argv)
  seeds = [int(s) for s in args.seeds.split(',')]
  metrics = [k for k, _ in RECON] + ['gfd_vgg']
  head = ['arm'] + [label for _, label in RECON] + ['gFD-VGG (10k samples)',
                                                    'D wins (last log)']
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  command = 'python ' + ' '.join(shlex.quote(a) for a in ['benchmarks/adversarial_table.py']
                                 + (argv if argv is not None else sys.argv[1:]))
  date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
  records = []
  for arm, label in ARMS:
    runs = [run_values(args.root, arm, s) for s in seeds]
    cells = [label]
    for k in metrics:
      m, s = records_lib.mean_std([r[k] for r in runs])
      cells.append(f'{m:.4g} ± {s:.2g}')
      records.append(dict(
          name=f'adversarial_table/{arm}', metric=runs[0]['gfd_name'] if k == 'gfd_vgg' else k,
          value=m, std=s, per_seed=[r[k] for r in runs], seeds=seeds, unit='',
          root=args.root, device=throughput.device_description(),
          git=records_lib.git_revision(), date=date, command=command))
    wins = [r['disc_wins'] for r in runs if r['disc_wins'] is not None]
    cells.append('-' if not wins else f'{statistics.mean(wins):.2f}')
    lines.append('| ' + ' | '.join(cells) + ' |')
  print('\n'.join(lines))
  records_lib.append_records(args.out, records)


if __name__ == '__main__':
  main()

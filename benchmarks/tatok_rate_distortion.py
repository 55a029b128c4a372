"""TaTok's rate-distortion curve (tokens per image vs PSNR, LPIPS, FD-VGG) on Fashion-MNIST
test images, beside TiTok and SelfBootTok points.

  python benchmarks/tatok_rate_distortion.py --tatok_workdir workdirs/tatok/tatok_g8 \
      --table_root workdirs/table --num_images 2000

One TaTok run is evaluated at every --rates value with sbt_jax.evaluate (results.json per rate
under <tatok_workdir>/eval/, reused when present). The other points are the runs of
benchmarks/selfboottok_table.py under --table_root (their eval results are reused or made
with the same settings). Writes <out_dir>/rate_distortion.md and .png and appends one
record per number to benchmarks/results.jsonl.
"""
import argparse
import datetime
import json
import os
import shlex
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

from benchmarks import selfboottok_table  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import records as records_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from sbt_jax import evaluate  # pylint: disable=g-import-not-at-top,wrong-import-position

# label, run under --table_root, mode, temperature (the comparison points).
OTHERS = (
    ('TiTok G=8', 'titok8', 'compress', 0.0),
    ('TiTok G+L=16', 'titok16', 'compress', 0.0),
    ('SelfBootTok compress (G+L=16)', 'sbt_ot', 'compress', 0.0),
    ('SelfBootTok generate, argmax (G=8 stored)', 'sbt_ot', 'generate', 0.0),
)
METRICS = ('psnr', 'ssim', 'lpips', 'fd_vgg', 'codebook')


def evaluate_rate(workdir, rate, num_images):
  out_dir = os.path.join(workdir, 'eval', f'rate{rate:g}_n{num_images}')
  path = os.path.join(out_dir, 'results.json')
  if not os.path.isfile(path):
    evaluate.evaluate(workdir, METRICS, num_images=num_images, out_dir=out_dir, rate=rate)
  with open(path) as f:
    return json.load(f)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--tatok_workdir', required=True)
  p.add_argument('--table_root', default=os.path.join(_ROOT, 'workdirs', 'table'),
                 help="runs of benchmarks/selfboottok_table.py ('' skips the other points)")
  p.add_argument('--rates', default='0,0.1,0.2,0.3,0.5,0.7,0.9,1')
  p.add_argument('--num_images', type=int, default=2000)
  p.add_argument('--out_dir', default=None, help='default: the TaTok workdir')
  p.add_argument('--out', default=os.path.join(_ROOT, 'benchmarks', 'results.jsonl'))
  args = p.parse_args(argv)
  rates = [float(r) for r in args.rates.split(',')]
  if any(not 0 <= r <= 1 for r in rates):
    p.error(f'--rates={args.rates}: every rate must be in [0, 1]')
  command = 'python ' + ' '.join(shlex.quote(a) for a in ['benchmarks/tatok_rate_distortion.py']
                                 + (argv if argv is not None else sys.argv[1:]))
  date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
  rows = []
  for rate in rates:
    res = evaluate_rate(args.tatok_workdir, rate, args.num_images)
    rows.append(dict(label=f'TaTok r={rate:g}', name=f'tatok/rate{rate:g}', rate=rate,
                     **_numbers(res)))
  if args.table_root:
    for label, run, mode, temperature in OTHERS:
      res = selfboottok_table.evaluate_row(args.table_root, run, mode, temperature, None,
                                           args.num_images)
      rows.append(dict(label=label, name=f'{run}/{mode}_t{temperature:g}', rate=None,
                       **_numbers(res)))
  lines = ['| tokenizer | tokens/image | PSNR | SSIM | LPIPS | FD-VGG | codes used '
           '(global / patch) |', '|' + '---|' * 7]
  for r in rows:
    patch = '' if r['patch_codes_used'] is None else f" / {r['patch_codes_used']:.0f}"
    lines.append(f"| {r['label']} | {r['tokens']:.1f} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                 f"{r['lpips']:.3f} | {r['fd_vgg']:.2f} | {r['codes_used']:.0f}{patch} |")
  out_dir = args.out_dir or args.tatok_workdir
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, 'rate_distortion.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  print('\n'.join(lines))
  _plot(rows, os.path.join(out_dir, 'rate_distortion.png'))
  records = [dict(name=f"tatok_rate_distortion/{r['name']}", metric=key, value=r[key],
                  unit={'psnr': 'dB', 'tokens': 'tokens/image'}.get(key, ''),
                  config='configs/tatok_fmnist.py' if r['rate'] is not None
                  else 'configs/selfboottok_fmnist.py', label=r['label'],
                  device='cpu (2 cores)', date=date, command=command,
                  num_images=r['num_images'])
             for r in rows for key in ('tokens', 'psnr', 'ssim', 'lpips', 'fd_vgg')]
  records_lib.append_records(args.out, records)


def _numbers(res):
  m = res['metrics']
  return dict(tokens=float(m.get('tokens_per_image', res['ids_per_image'])), psnr=m['psnr'],
              ssim=m['ssim'], lpips=m['lpips'], fd_vgg=m['rfd_vgg'],
              codes_used=m['codes_used'], patch_codes_used=m.get('patch_codes_used'),
              num_images=res['num_images'])


def _plot(rows, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  tatok = [r for r in rows if r['rate'] is not None]
  others = [r for r in rows if r['rate'] is None]
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
  for ax, key, name in zip(axes, ('psnr', 'lpips', 'fd_vgg'),
                           ('PSNR (dB, higher is better)', 'LPIPS (lower is better)',
                            'FD-VGG (lower is better)')):
    ax.plot([r['tokens'] for r in tatok], [r[key] for r in tatok], 'o-', label='TaTok (one '
            'model, r from 0 to 1)')
    for r in tatok:
      ax.annotate(f"r={r['rate']:g}", (r['tokens'], r[key]), fontsize=7,
                  textcoords='offset points', xytext=(3, 3))
    for r, marker in zip(others, 'sD^v'):
      ax.plot([r['tokens']], [r[key]], marker, label=r['label'])
    ax.set_xlabel('tokens per image')
    ax.set_ylabel(name)
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


if __name__ == '__main__':
  main()

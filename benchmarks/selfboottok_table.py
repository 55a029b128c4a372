"""The SelfBootTok comparison table and the w_generate balance curve (Fashion-MNIST test).

  python benchmarks/selfboottok_table.py --root workdirs/table --num_images 5000

Expects these runs under --root (each trained with configs/selfboottok_fmnist.py, 1,000
steps, same encoder/decoder; see docs/selfboottok.md for the commands):
  titok8, titok16, sbt_ot, sbt_latent, sbt_ot_wgen0.3, sbt_ot_wgen1 (tokenizer stage) and
  sbt_ot_aligner_w128d4 (aligner stage on sbt_ot).
Evaluates each row with sbt_jax.evaluate (PSNR, SSIM, LPIPS, FD-VGG, codebook stats; one
results.json per row under <run>/eval/, reused when present), then writes
<root>/table.md, <root>/balance.md, <root>/balance.png and appends one record per number to
benchmarks/results.jsonl.
"""
import argparse
import datetime
import json
import os
import shlex
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

from benchmarks import records as records_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from sbt_jax import evaluate  # pylint: disable=g-import-not-at-top,wrong-import-position

# label, run, mode, temperature, aligner run
ROWS = (
    ('TiTok, G=8 tokens', 'titok8', 'compress', 0.0, None),
    ('TiTok, G+L=16 tokens', 'titok16', 'compress', 0.0, None),
    ("SelfBootTok compress, local_tokens='ot'", 'sbt_ot', 'compress', 0.0, None),
    ("SelfBootTok compress, local_tokens='latent'", 'sbt_latent', 'compress', 0.0, None),
    ('SelfBootTok generate, argmax, tokenizer-stage aligner', 'sbt_ot', 'generate', 0.0, None),
    ('SelfBootTok generate, sampled T=1, tokenizer-stage aligner', 'sbt_ot', 'generate', 1.0,
     None),
    ('SelfBootTok generate, argmax, aligner-stage aligner (w128 d4)', 'sbt_ot', 'generate', 0.0,
     'sbt_ot_aligner_w128d4'),
    ('SelfBootTok generate, sampled T=1, aligner-stage aligner (w128 d4)', 'sbt_ot', 'generate',
     1.0, 'sbt_ot_aligner_w128d4'),
)
BALANCE = ((0.0, 'sbt_ot'), (0.3, 'sbt_ot_wgen0.3'), (1.0, 'sbt_ot_wgen1'))
METRICS = ('psnr', 'ssim', 'lpips', 'fd_vgg', 'codebook')


def train_minutes(workdir):
  """Wall minutes of the run (clu's last 'uptime'; runs shared the 2-core CPU)."""
  uptime = None
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    for line in f:
      row = json.loads(line)
      uptime = row.get('uptime', uptime)
  return None if uptime is None else uptime / 60


def evaluate_row(root, run, mode, temperature, aligner, num_images):
  name = f'{mode}_t{temperature:g}' + (f'_{aligner}' if aligner else '') + f'_n{num_images}'
  out_dir = os.path.join(root, run, 'eval', name)
  path = os.path.join(out_dir, 'results.json')
  if not os.path.isfile(path):
    evaluate.evaluate(os.path.join(root, run), METRICS, num_images=num_images, out_dir=out_dir,
                      mode=mode, temperature=temperature,
                      aligner_workdir=os.path.join(root, aligner) if aligner else None)
  with open(path) as f:
    return json.load(f)


def _fmt(v, digits=3):
  return '-' if v is None else f'{v:.{digits}f}'


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--root', default=os.path.join(_ROOT, 'workdirs', 'table'))
  p.add_argument('--num_images', type=int, default=5000)
  p.add_argument('--only', default='', help='comma-separated runs to evaluate (others skipped)')
  p.add_argument('--out', default=os.path.join(_ROOT, 'benchmarks', 'results.jsonl'))
  args = p.parse_args(argv)
  only = set(filter(None, args.only.split(',')))
  command = 'python ' + ' '.join(shlex.quote(a) for a in ['benchmarks/selfboottok_table.py'] +
                                 (argv if argv is not None else sys.argv[1:]))
  rows, records = [], []
  date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
  specs = list(ROWS) + [(f'balance w_generate={w:g} {mode} T={t:g}', run, mode, t, None)
                        for w, run in BALANCE[1:] for mode, t in
                        (('compress', 0.0), ('generate', 0.0), ('generate', 1.0))]
  for label, run, mode, temperature, aligner in specs:
    if only and run not in only and aligner not in only:
      continue
    res = evaluate_row(args.root, run, mode, temperature, aligner, args.num_images)
    m = res['metrics']
    minutes = train_minutes(os.path.join(args.root, run))
    if aligner:
      minutes = (minutes or 0) + (train_minutes(os.path.join(args.root, aligner)) or 0)
    row = dict(label=label, run=run, mode=mode, temperature=temperature, aligner=aligner,
               ids_per_image=res['ids_per_image'], psnr=m['psnr'], ssim=m['ssim'],
               lpips=m['lpips'], fd_vgg=m['rfd_vgg'], local_codes_used=m.get('local_codes_used'),
               local_entropy_bits=m.get('local_entropy_bits'),
               local_ce_bits=m.get('local_ce_bits'), train_minutes=minutes,
               num_images=res['num_images'])
    rows.append(row)
    for key in ('psnr', 'ssim', 'lpips', 'fd_vgg', 'local_codes_used', 'local_entropy_bits',
                'local_ce_bits', 'train_minutes'):
      if row[key] is not None:
        records.append(dict(name=f'selfboottok_table/{run}/{mode}_t{temperature:g}'
                            + (f'/{aligner}' if aligner else ''),
                            metric=key, value=row[key], unit={'psnr': 'dB', 'train_minutes':
                                                              'min'}.get(key, ''),
                            config='configs/selfboottok_fmnist.py', label=label,
                            device='cpu (2 cores)', date=date, command=command,
                            num_images=row['num_images']))
  if only:
    print(json.dumps(rows, indent=1))
    return
  _write_outputs(args, rows, records)


def _write_outputs(args, rows, records):
  """table.md (main rows), balance.md + balance.png (w_generate curve), records."""
  local_cols = lambda r: (_fmt(r['local_codes_used'], 0), _fmt(r['local_entropy_bits'], 2),
                          _fmt(r['local_ce_bits'], 2))
  lines = ['| tokenizer | ids/image | PSNR | SSIM | LPIPS | FD-VGG | local codes used | '
           'local-id entropy (bits) | local bits given global ids (aligner CE) | '
           'train min (wall, shared CPU) |', '|' + '---|' * 10]
  for r in rows[:len(ROWS)]:
    lines.append(f"| {r['label']} | {r['ids_per_image']} | {_fmt(r['psnr'], 2)} | "
                 f"{_fmt(r['ssim'])} | {_fmt(r['lpips'])} | {_fmt(r['fd_vgg'], 2)} | "
                 + ' | '.join(local_cols(r)) + f" | {_fmt(r['train_minutes'], 1)} |")
  with open(os.path.join(args.root, 'table.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  print('\n'.join(lines))

  by = {(r['run'], r['mode'], r['temperature'], r['aligner']): r for r in rows}
  curve = []
  for w, run in BALANCE:
    comp = by.get((run, 'compress', 0.0, None))
    gen0 = by.get((run, 'generate', 0.0, None))
    gen1 = by.get((run, 'generate', 1.0, None))
    if comp and gen0 and gen1:
      curve.append((w, comp, gen0, gen1))
  lines = ['| w_generate | compress PSNR | compress FD-VGG | generate argmax PSNR | '
           'generate argmax FD-VGG | generate T=1 FD-VGG | local codes used | '
           'local-id entropy (bits) | aligner CE (bits) |', '|' + '---|' * 9]
  for w, c, g0, g1 in curve:
    lines.append(f"| {w:g} | {_fmt(c['psnr'], 2)} | {_fmt(c['fd_vgg'], 2)} | "
                 f"{_fmt(g0['psnr'], 2)} | {_fmt(g0['fd_vgg'], 2)} | {_fmt(g1['fd_vgg'], 2)} | "
                 + ' | '.join(local_cols(c)) + ' |')
  with open(os.path.join(args.root, 'balance.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  print('\n'.join(lines))
  if curve:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    ws = [c[0] for c in curve]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(ws, [c[1]['fd_vgg'] for c in curve], 'o-', label='compress (G+L ids)')
    ax[0].plot(ws, [c[2]['fd_vgg'] for c in curve], 's-', label='generate, argmax (G ids)')
    ax[0].plot(ws, [c[3]['fd_vgg'] for c in curve], '^-', label='generate, T=1 (G ids)')
    ax[0].set_xlabel('w_generate')
    ax[0].set_ylabel('FD-VGG vs test images (lower is better)')
    ax[0].legend(fontsize=8)
    ax[1].plot(ws, [c[1]['local_entropy_bits'] for c in curve], 'o-',
               label='local-id entropy (marginal)')
    ax[1].plot(ws, [c[1]['local_ce_bits'] for c in curve], 's-',
               label='aligner CE: bits left given global ids')
    ax[1].set_xlabel('w_generate')
    ax[1].set_ylabel('bits per local token')
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.root, 'balance.png'), dpi=120)
  records_lib.append_records(args.out, records)


if __name__ == '__main__':
  main()

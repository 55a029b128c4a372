"""CRT on/off table from finished runs: tokenizer reconstruction and a generator on each.

  python benchmarks/crt_table.py \
      --tokenizers workdirs/table/titok8,workdirs/crt/titok8_crt \
      --generators workdirs/crt/gen_titok8,workdirs/crt/gen_titok8_crt \
      --recon_eval compress_t0_n5000 --fd_eval n10000

Reads what the runs and the eval commands already wrote (nothing is recomputed):
  <tokenizer>/eval/<recon_eval>/results.json   python -m sbt_jax.evaluate --num_images ...
  <tokenizer>/metrics.jsonl                    the last train/crt_loss (CRT runs)
  <generator>/metrics.jsonl                    eval/loss, eval/accuracy at the last step
  <generator>/eval_fd/<fd_eval>/results.json   python benchmarks/generator_fd.py
Prints a markdown table and appends one record per number to benchmarks/results.jsonl.
"""
import argparse
import datetime
import os
import shlex
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

from benchmarks import records as records_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import throughput  # pylint: disable=g-import-not-at-top,wrong-import-position

RECON = (('psnr', 'PSNR (dB)'), ('ssim', 'SSIM'), ('lpips', 'LPIPS'), ('rfd_vgg', 'rFD-VGG'),
         ('codes_used', 'codes used'), ('codebook_perplexity', 'code perplexity'))


_json = records_lib.read_json
_last = records_lib.last_metric


def row(tok_dir, gen_dir, recon_eval, fd_eval):
  recon = _json(os.path.join(tok_dir, 'eval', recon_eval, 'results.json'))
  tok_config = _json(os.path.join(tok_dir, 'config.json'))
  crt = tok_config.get('crt', {})
  out = {'tokenizer': tok_dir, 'generator': gen_dir,
         'crt': bool(crt.get('enabled', False)),
         'recon_images': recon['num_images'], 'tokenizer_step': recon['step']}
  out.update({k: recon['metrics'][k] for k, _ in RECON})
  crt_loss = _last(os.path.join(tok_dir, 'metrics.jsonl'), 'train/crt_loss')
  out['crt_loss'] = crt_loss[1] if crt_loss else None
  gen_metrics = os.path.join(gen_dir, 'metrics.jsonl')
  out['gen_step'], out['gen_val_loss'] = _last(gen_metrics, 'eval/loss')
  out['gen_val_accuracy'] = _last(gen_metrics, 'eval/accuracy')[1]
  fd = _json(os.path.join(gen_dir, 'eval_fd', fd_eval, 'results.json'))
  (out['gfd_name'], out['gfd_vgg']), = [(k, v) for k, v in fd['metrics'].items()
                                        if k.startswith('gfd_vgg')]
  return out


def markdown(rows):
  head = (['CRT'] + [label for _, label in RECON] +
          ['CRT loss (end)', 'gen val NLL', 'gen val acc', rows[0]['gfd_name']])
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for r in rows:
    cells = ['on' if r['crt'] else 'off'] + [f'{r[k]:.4g}' for k, _ in RECON]
    cells += ['-' if r['crt_loss'] is None else f'{r["crt_loss"]:.2g}',
              f'{r["gen_val_loss"]:.4f}', f'{r["gen_val_accuracy"]:.4f}', f'{r["gfd_vgg"]:.2f}']
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--tokenizers', required=True, help='comma-separated: CRT off, CRT on')
  p.add_argument('--generators', required=True, help='comma-separated, one per tokenizer')
  p.add_argument('--recon_eval', default='compress_t0_n5000')
  p.add_argument('--fd_eval', default='n10000')
  p.add_argument('--out', default=os.path.join(_ROOT, 'benchmarks', 'results.jsonl'))
  args = p.parse_args(argv)
  toks, gens = args.tokenizers.split(','), args.generators.split(',')
  if len(toks) != len(gens):
    raise SystemExit('--tokenizers and --generators need the same number of runs')
  rows = [row(t, g, args.recon_eval, args.fd_eval) for t, g in zip(toks, gens)]
  print(markdown(rows))
  command = 'python ' + ' '.join(shlex.quote(a) for a in ['benchmarks/crt_table.py'] +
                                 (argv if argv is not None else sys.argv[1:]))
  date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
  records = []
  for r in rows:
    name = f'crt_table/{os.path.basename(r["tokenizer"].rstrip("/"))}'
    metrics = [(k, r[k], '') for k, _ in RECON] + [
        ('gen_val_loss', r['gen_val_loss'], 'nats/token'),
        ('gen_val_accuracy', r['gen_val_accuracy'], ''),
        (r['gfd_name'], r['gfd_vgg'], '')]
    if r['crt_loss'] is not None:
      metrics.append(('crt_loss', r['crt_loss'], ''))
    for metric, value, unit in metrics:
      records.append(dict(
          name=name, metric=metric, value=value, unit=unit, crt=r['crt'],
          config=os.path.join(r['tokenizer'], 'config.json'), generator_workdir=r['generator'],
          tokenizer_step=r['tokenizer_step'], generator_step=r['gen_step'],
          recon_images=r['recon_images'], device=throughput.device_description(),
          git=records_lib.git_revision(), date=date, command=command))
  records_lib.append_records(args.out, records)


if __name__ == '__main__':
  main()

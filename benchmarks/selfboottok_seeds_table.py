"""Issue 20's table: SelfBootTok vs TiTok over seeds (mean +- std), with generator FLOPs.

  python benchmarks/selfboottok_seeds_table.py [--seeds 0,1,2] [--record]

Reads what benchmarks/selfboottok_seeds.sh, selfboottok_variants.sh and
selfboottok_horizon.sh (3x the steps; --horizon_variant is its SBT_VARIANT) wrote (nothing is
recomputed; a row shows the seeds that have finished, n = how many), in the workdirs or, for
runs that finished on another machine, in their committed copies under --archive
(benchmarks/runs/<root name>/<run>/, run_steps.sh's `archive`):
  <run>/eval/<eval>/results.json               PSNR, SSIM, LPIPS, rFD-VGG (whole test split)
  <gen>/eval_fd/<suffix>/results.json          gFD-VGG of 10,000 class-balanced samples
  <gen>/eval_final.json                         the generator's validation NLL on the test
                                                split's ids (nats per masked id, unsmoothed):
                                                how predictable the stored ids are
and the generator compute that benchmarks/generator.py appended to results.jsonl under
`selfboottok_seeds/<flops>` (run with --tokenizer_config: compute does not depend on weights;
the command is in benchmarks/README.md):
  train_ids/float32 flops_per_step   one MaskGIT train step on cached ids (batch of the config)
  sample/float32 flops_per_image     sampling + the tokenizer's decode, per image
Prints markdown tables: mean +- std per row (std: sample standard deviation, ddof = 1);
what the stored ids look like; gFD-VGG per seed and paired with TiTok-8's; then the same
three for the longer horizon, paired with TiTok-8 at 3x the steps; then the same three for
the readings of the method (VARIANT_ROWS) beside their baselines, paired with TiTok-8 and
with SelfBootTok 'ot'. With --record, appends one record per complete row (all seeds) and
metric to benchmarks/results.jsonl, unless its latest record there has the same per-seed
values. With --note docs/selfboottok_vs_titok.md, also rewrites
the research note's blocks named by --note_blocks: `tables` (the first two tables),
`per_seed` (the third), `horizon` (the horizon's three) and `variants` (the readings'
three), each between its `<!-- name -->` and `<!-- /name -->` markers and stamped
with the commit and date; the rest stays as written.
"""
import argparse
import datetime
import json
import os
import re
import shlex
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

from benchmarks import records as records_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import throughput  # pylint: disable=g-import-not-at-top,wrong-import-position

SEEDS_ROOT, ADV_ROOT = 'seeds', 'adv'  # --seeds_root, --adv_root (run_steps.sh's defaults)

# name, label, (root, run), eval name, (generator run, eval_fd suffix), flops record.
# '{s}' is the seed. The fine-tune shares sbt_ot's global ids, so sbt_ot's generator is
# decoded by it; the larger aligner is swapped into sbt_ot's generator the same way.
ROWS = (
    ('titok8', 'TiTok, G=8', (ADV_ROOT, 'titok8_s{s}'), 'test_all',
     (ADV_ROOT, 'gen_titok8_s{s}', 'n10000'), 'titok8'),
    ('titok16', 'TiTok, G+L=16', (SEEDS_ROOT, 'titok16_s{s}'), 'test_all',
     (SEEDS_ROOT, 'gen_titok16_s{s}', 'n10000'), 'titok16'),
    ('sbt_ot_compress', "SelfBootTok 'ot', compress (G+L ids stored)",
     (SEEDS_ROOT, 'sbt_ot_s{s}'), 'test_all', None, None),
    ('sbt_ot', "SelfBootTok 'ot', generate (G=8 ids)", (SEEDS_ROOT, 'sbt_ot_s{s}'),
     'test_all_generate', (SEEDS_ROOT, 'gen_sbt_ot_s{s}', 'n10000'), 'sbt'),
    ('sbt_latent', "SelfBootTok 'latent' control, generate", (SEEDS_ROOT, 'sbt_latent_s{s}'),
     'test_all_generate', (SEEDS_ROOT, 'gen_sbt_latent_s{s}', 'n10000'), 'sbt'),
    ('sbt_ema', 'SelfBootTok, EMA-teacher targets, generate', (SEEDS_ROOT, 'sbt_ema_s{s}'),
     'test_all_generate', (SEEDS_ROOT, 'gen_sbt_ema_s{s}', 'n10000'), 'sbt'),
    ('sbt_softlocal', 'SelfBootTok, soft local tokens, generate',
     (SEEDS_ROOT, 'sbt_softlocal_s{s}'), 'test_all_generate',
     (SEEDS_ROOT, 'gen_sbt_softlocal_s{s}', 'n10000'), 'sbt_softlocal'),
    ('sbt_ot_ft', "SelfBootTok 'ot' + decoder fine-tune with D, generate",
     (SEEDS_ROOT, 'sbt_ot_ft_s{s}'), 'test_all_generate',
     (SEEDS_ROOT, 'gen_sbt_ot_s{s}', 'n10000_sbt_ot_ft_s{s}'), 'sbt'),
    # Which half of that fine-tune helps (its two ablations, benchmarks/README.md):
    ('sbt_ot_ft_nogen', "SelfBootTok 'ot' + fine-tune with D, w_generate=0, generate",
     (SEEDS_ROOT, 'sbt_ot_ft_nogen_s{s}'), 'test_all_generate',
     (SEEDS_ROOT, 'gen_sbt_ot_s{s}', 'n10000_sbt_ot_ft_nogen_s{s}'), 'sbt'),
    ('sbt_ot_ft_nod', "SelfBootTok 'ot' + fine-tune without D (w_generate=1), generate",
     (SEEDS_ROOT, 'sbt_ot_ft_nod_s{s}'), 'test_all_generate',
     (SEEDS_ROOT, 'gen_sbt_ot_s{s}', 'n10000_sbt_ot_ft_nod_s{s}'), 'sbt'),
    ('titok8_ft', 'TiTok, G=8 + decoder fine-tune with D',
     (ADV_ROOT, 'titok8_ft_s{s}'), 'test_all',
     (ADV_ROOT, 'gen_titok8_s{s}', 'n10000_titok8_ft_s{s}'), 'titok8'),
    ('titok8_ft_nod', 'TiTok, G=8 + decoder fine-tune without D',
     (ADV_ROOT, 'titok8_ft_nod_s{s}'), 'test_all',
     (ADV_ROOT, 'gen_titok8_s{s}', 'n10000_titok8_ft_nod_s{s}'), 'titok8'),
    ('sbt_ot_aligner', "SelfBootTok 'ot' + larger aligner, local ids sampled T=1",
     (SEEDS_ROOT, 'sbt_ot_s{s}'), 'test_all_generate_aligner_t1',
     (SEEDS_ROOT, 'gen_sbt_ot_s{s}', 'n10000_aligner'), 'sbt_aligner'),
)


# The readings of the method (issue 20's step 2, selfboottok_variants.sh) beside the two
# baselines they pair with, seed by seed: TiTok-8 and the SelfBootTok 'ot' run that the
# fine-tune and the larger aligner start from; and the fine-tunes' controls, TiTok-8 with the
# same decoder fine-tunes (with and without D). A view of ROWS (its records are ROWS').
VARIANT_ROWS = tuple(r for r in ROWS if r[0] in ('titok8', 'sbt_ot', 'sbt_ema', 'sbt_softlocal',
                                                 'sbt_ot_ft', 'sbt_ot_ft_nogen', 'sbt_ot_ft_nod',
                                                 'titok8_ft', 'titok8_ft_nod',
                                                 'sbt_ot_aligner'))


def horizon_rows(variant):
  """The longer horizon (benchmarks/selfboottok_horizon.sh, 3x the steps): TiTok-8 and the
  SelfBootTok reading SBT_VARIANT=variant ('ot': the default config)."""
  flops = 'sbt_softlocal' if variant == 'softlocal' else 'sbt'
  return (
      ('titok8_3x', 'TiTok, G=8, 3x steps', (SEEDS_ROOT, 'titok8_3x_s{s}'), 'test_all',
       (SEEDS_ROOT, 'gen_titok8_3x_s{s}', 'n10000'), 'titok8'),
      (f'sbt_{variant}_3x', f"SelfBootTok '{variant}', generate, 3x steps",
       (SEEDS_ROOT, f'sbt_{variant}_3x_s{{s}}'), 'test_all_generate',
       (SEEDS_ROOT, f'gen_sbt_{variant}_3x_s{{s}}', 'n10000'), flops),
  )


RECON = (('psnr', 'PSNR (dB)'), ('ssim', 'SSIM'), ('lpips', 'LPIPS'), ('rfd_vgg', 'rFD-VGG'))
# The second table: what the stored ids look like, from each tokenizer's compress-mode eval
# on the whole test split (<run>/eval/test_all/results.json): the perplexity of the global
# ids a generator models, and for SelfBootTok the local ids' perplexity and the bits per
# local id the aligner still misses given the global ids (its cross-entropy).
DIAGNOSTICS = (('codebook_perplexity', 'global-id perplexity'),
               ('local_codebook_perplexity', 'local-id perplexity'),
               ('local_ce_bits', 'aligner CE (bits / local id)'))


def _find(dirs, *parts):
  """The first of dirs/parts that exists (dirs: a root's workdir, then its archive), or
  the first if none does."""
  paths = [os.path.join(d, *parts) for d in dirs]
  return next((p for p in paths if os.path.exists(p)), paths[0])


def _metrics(path):
  try:
    with open(path) as f:
      return json.load(f)['metrics']
  except FileNotFoundError:
    return None


def seed_values(row, seed, roots):
  """{metric: value} of one row and seed, or None while any of its files is missing.
  roots: {root name: (workdir root, archive root)}."""
  _, _, (root, run), eval_name, gen, _ = row
  recon = _metrics(_find(roots[root], run.format(s=seed), 'eval', eval_name, 'results.json'))
  if recon is None:
    return None
  out = {k: recon[k] for k, _ in RECON}
  if gen is not None:
    groot, grun, suffix = gen
    fd = _metrics(_find(roots[groot], grun.format(s=seed), 'eval_fd', suffix.format(s=seed),
                        'results.json'))
    if fd is None:
      return None
    (out['gfd_name'], out['gfd_vgg']), = [(k, v) for k, v in fd.items()
                                          if k.startswith('gfd_vgg')]
    with open(_find(roots[groot], grun.format(s=seed), 'eval_final.json')) as f:
      out['gen_nll'] = json.load(f)['eval/loss']
  return out


def _md(cells):
  return '| ' + ' | '.join(cells) + ' |'


def _md_head(head):
  return [_md(head), '|' + '---|' * len(head)]


def _mean_std_cell(values):
  m, sd = records_lib.mean_std(values)
  return f'{m:.4g} ± {sd:.2g}'


def diagnostics_table(rows, seeds, roots):
  """Markdown lines of DIAGNOSTICS (mean +- std over the seeds that finished) for each
  row whose run is a tokenizer of its own with a compress-mode eval."""
  lines = _md_head(['tokenizer', 'n'] + [label for _, label in DIAGNOSTICS])
  seen = set()
  for _, label, (root, run), _, _, _ in rows:
    if (root, run) in seen:
      continue
    seen.add((root, run))
    found = [m for s in seeds if (m := _metrics(_find(
        roots[root], run.format(s=s), 'eval', 'test_all', 'results.json'))) is not None]
    if not found:
      continue
    cells = [label.split(', generate')[0].split(', compress')[0], str(len(found))]
    for k, _ in DIAGNOSTICS:
      values = [m[k] for m in found if k in m]
      cells.append(_mean_std_cell(values) if values else '-')
    lines.append(_md(cells))
  return lines


def per_seed_table(finished, seeds, base='TiTok-8', also=None):
  """Markdown lines: each row's gFD-VGG per seed, and its difference from the first row's
  (`base`, TiTok-8's) generator of the same seed: the seeds pair (same seed for tokenizer,
  generator and sampling), so the paired differences (with their mean +- std once two
  seeds pair) show what the means hide. also: (row name, label), a second row every later
  row is paired with too, in a column of its own.
  `finished`: (row, [(seed, values)]) as main collected them."""
  with_gen = [(row, dict((s, v['gfd_vgg']) for s, v in runs))
              for row, runs in finished if row[4] is not None]
  (base_row, base_values), others = with_gen[0], with_gen[1:]
  bases = [(base, base_values)]
  if also:
    bases.append((also[1], next(v for row, v in with_gen if row[0] == also[0])))
  lines = _md_head(['row'] + [f'seed {s}' for s in seeds]
                   + [f'minus {label}, same seed' for label, _ in bases])
  lines.append(_md([base_row[1]] + [f'{base_values[s]:.2f}' if s in base_values else '-'
                                    for s in seeds] + ['-'] * len(bases)))
  for row, values in others:
    if not values:
      continue
    cells = [row[1]] + [f'{values[s]:.2f}' if s in values else '-' for s in seeds]
    for _, against in bases:
      diffs = [values[s] - against[s] for s in seeds if s in values and s in against]
      paired = ', '.join(f'{d:+.2f}' for d in diffs) or '-'
      if len(diffs) > 1 and against is not values:  # the paired difference's mean +- std
        paired += ' (mean {:+.2f} ± {:.2f})'.format(*records_lib.mean_std(diffs))
      cells.append('-' if against is values else paired)
    lines.append(_md(cells))
  return lines


def generator_flops(results_path):
  """{flops name: (train flops/step, sample flops/image)}: the newest selfboottok_seeds/*
  records of benchmarks/generator.py."""
  found = {}
  if not os.path.exists(results_path):
    return found
  with open(results_path) as f:
    for line in f:
      r = json.loads(line)
      parts = r.get('name', '').split('/')
      if parts[0] != 'selfboottok_seeds' or len(parts) < 4:
        continue
      key = (parts[1], parts[2], r['metric'])
      found[key] = r['value']
  out = {}
  for name in {k[0] for k in found}:
    out[name] = (found.get((name, 'train_ids', 'flops_per_step')),
                 found.get((name, 'sample', 'flops_per_image')))
  return out


def _g(flops):
  return '-' if flops is None else f'{flops / 1e9:.3g}'


def plot(rows, path):
  """Per-seed dots and mean +- std bars of gFD-VGG and rFD-VGG, one line per row given (main
  gives those with every seed); the first such row's (TiTok-8's) mean +- std is shaded, so
  'below it by more than one std' reads off."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  rows = [(label, runs) for label, runs in rows if runs]
  if not rows:
    sys.exit(f'--plot {path}: no row has all its seeds finished')
  labels = [label for label, _ in rows]
  fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.2), sharey=True)
  for ax, key, title in zip(axes, ('gfd_vgg', 'rfd_vgg'),
                            ('gFD-VGG of 10k samples (lower is better)',
                             'rFD-VGG, whole test split (lower is better)')):
    band = None
    for y, (_, runs) in enumerate(rows):
      values = [v[key] for v in runs if key in v]
      if not values:
        continue
      m, sd = records_lib.mean_std(values)
      band = band or (m - sd, m + sd)
      ax.plot(values, [y] * len(values), 'o', color='tab:blue', alpha=0.45, ms=4)
      ax.errorbar([m], [y], xerr=[sd], fmt='s', color='black', ms=5, capsize=3)
    if band:
      ax.axvspan(*band, color='tab:orange', alpha=0.2, lw=0)
    ax.set_title(title, fontsize=9)
    ax.grid(axis='x', alpha=0.3)
  axes[0].set_yticks(range(len(labels)), labels, fontsize=8)
  axes[0].invert_yaxis()
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


_STAMP = ('As of `{commit}`, {date} (n = seeds finished; mean ± sample std; the FLOPs columns '
          'are the `selfboottok_seeds/*` records of `benchmarks/results.jsonl`, each with its '
          'commit; made by the last command above):\n\n')
_IDS = ('What the stored ids look like (compress-mode eval of each tokenizer, whole test '
        'split; the aligner CE is the bits per local id the aligner still misses given the '
        'global ids):\n\n')
NOTE_BLOCKS = ('tables', 'per_seed', 'horizon', 'variants')
_VARIANTS = ('The readings of the method beside the baselines they pair with (TiTok-8 and '
             "SelfBootTok 'ot' of the same seed):")


def note_blocks(tables, commit, date):
  """{block name: its text in the note} from main's tables: `tables` the mean +- std and
  diagnostics tables, `per_seed` the per-seed gFD, `horizon` the horizon's three,
  `variants` the readings' three."""
  stamp = _STAMP.format(commit=commit, date=date)
  (main_table, ids, per_seed), (h_main, h_ids, h_per_seed), (v_main, v_ids, v_per_seed) = tables
  return {'tables': stamp + main_table + '\n\n' + _IDS + ids,
          'per_seed': per_seed,
          'horizon': (stamp + h_main + '\n\n' + _IDS + h_ids + '\n\nPer seed, paired with '
                      'TiTok-8 at 3x the steps:\n\n' + h_per_seed),
          'variants': (stamp + v_main + '\n\n' + _IDS + v_ids + '\n\nPer seed, paired with '
                       "TiTok-8 and with SelfBootTok 'ot':\n\n" + v_per_seed)}


def write_note(path, blocks, names):
  """Replaces the note's blocks `names` with blocks[name]. Exits with one line, the file
  untouched, if a block's markers are missing."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError as e:
    sys.exit(f'--note {path}: cannot read it ({e.strerror})')
  for marker in names:
    pattern = re.compile(rf'<!-- {marker} -->.*?<!-- /{marker} -->', re.S)
    if not pattern.search(text):
      sys.exit(f'--note {path}: no <!-- {marker} --> ... <!-- /{marker} --> block to fill')
    text = pattern.sub(lambda _, m=marker: f'<!-- {m} -->\n{blocks[m]}\n<!-- /{m} -->', text)
  with open(path, 'w') as f:
    f.write(text)
  print(f'rewrote the {", ".join(names)} blocks of {path}')


def row_tables(rows, seeds, roots, flops, stamp, base, also=None):
  """(markdown tables, records, finished) of rows: the mean +- std table, the ids table and
  the per-seed gFD paired with rows[0] (`base`) and `also` (per_seed_table's); records
  (when stamp is set: --record) for each row with every seed; finished: (row, [(seed,
  values)])."""
  lines = _md_head(['row', 'n'] + [label for _, label in RECON]
                   + ['gFD-VGG (10k)', 'generator val NLL (nats / masked id)',
                      'generator GFLOP / train step', 'GFLOP / sampled image'])
  records, finished = [], []
  for row in rows:
    name, label, _, _, gen, flops_name = row
    runs = [(s, v) for s in seeds if (v := seed_values(row, s, roots)) is not None]
    finished.append((row, runs))
    metrics = [k for k, _ in RECON] + (['gfd_vgg', 'gen_nll'] if gen else [])
    cells = [label, str(len(runs))]
    for k in metrics:
      if not runs:
        cells.append('-')
        continue
      values = [v[k] for _, v in runs]
      cells.append(_mean_std_cell(values))
      if stamp and len(runs) == len(seeds):
        m, sd = records_lib.mean_std(values)
        records.append(dict(
            name=f'selfboottok_seeds_table/{name}',
            metric=runs[0][1]['gfd_name'] if k == 'gfd_vgg' else k, value=m, std=sd,
            per_seed=values, seeds=seeds, unit='', **stamp))
    if not gen:
      cells += ['-', '-']
    train_f, sample_f = flops.get(flops_name, (None, None)) if gen else (None, None)
    cells += [_g(train_f), _g(sample_f)]
    lines.append(_md(cells))
  tables = [lines, diagnostics_table(rows, seeds, roots),
            per_seed_table(finished, seeds, base=base, also=also)]
  return ['\n'.join(t) for t in tables], records, finished


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--seeds', default='0,1,2')
  p.add_argument('--seeds_root', default=os.environ.get(
      'SEEDS_ROOT', os.path.join(_ROOT, 'workdirs', 'seeds')), help="selfboottok_seeds.sh's")
  p.add_argument('--adv_root', default=os.environ.get(
      'ADV_ROOT', os.path.join(_ROOT, 'workdirs', 'adv')), help="adversarial_fmnist.sh's")
  p.add_argument('--archive', default=os.environ.get(
      'ARCHIVE', os.path.join(_ROOT, 'benchmarks', 'runs')),
                 help="run_steps.sh's ARCHIVE: committed results of finished runs, read for "
                 'runs missing from the workdirs')
  p.add_argument('--out', default=os.path.join(_ROOT, 'benchmarks', 'results.jsonl'))
  p.add_argument('--horizon_variant', default='ot',
                 help="selfboottok_horizon.sh's SBT_VARIANT ('ot': the default config)")
  p.add_argument('--plot', default='',
                 help='write a PNG here: per-seed gFD-VGG and rFD-VGG of every row with a '
                 'finished seed, mean +- std')
  p.add_argument('--note', default='',
                 help="rewrite this research note's marked tables (docs/selfboottok_vs_titok.md)")
  p.add_argument('--note_blocks', default=','.join(NOTE_BLOCKS),
                 help='which of the note\'s blocks --note rewrites, comma-separated, of '
                 + ', '.join(NOTE_BLOCKS))
  p.add_argument('--record', action='store_true',
                 help='append records of the rows with every seed to --out')
  args = p.parse_args(argv)
  seeds = [int(s) for s in args.seeds.split(',')]
  names = [b for b in args.note_blocks.split(',') if b]
  if unknown := [b for b in names if b not in NOTE_BLOCKS]:
    sys.exit(f'--note_blocks: unknown block {unknown[0]!r}; choose from {", ".join(NOTE_BLOCKS)}')
  flops = generator_flops(args.out)
  roots = {root: (path, os.path.join(args.archive, os.path.basename(os.path.normpath(path))))
           for root, path in ((SEEDS_ROOT, args.seeds_root), (ADV_ROOT, args.adv_root))}
  command = 'python ' + ' '.join(shlex.quote(a) for a in
                                 ['benchmarks/selfboottok_seeds_table.py']
                                 + (argv if argv is not None else sys.argv[1:]))
  # What every record of this invocation shares (one git call, not one per record).
  stamp = dict(device=throughput.device_description(), git=records_lib.git_revision(),
               date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
               command=command) if args.record else {}
  tables, records, finished = [], [], []
  for rows, base in ((ROWS, 'TiTok-8'), (horizon_rows(args.horizon_variant), 'TiTok-8 3x')):
    t, r, f = row_tables(rows, seeds, roots, flops, stamp, base)
    tables.append(t)
    records += r
    finished += f
  # The readings: a view of ROWS (recorded above), with a second paired column.
  tables.append(row_tables(VARIANT_ROWS, seeds, roots, flops, {}, 'TiTok-8',
                           also=('sbt_ot', "'ot'"))[0])
  print('\n\n'.join(tables[0] + ['At 3x the steps:'] + tables[1] + [_VARIANTS] + tables[2]))
  if args.note:
    blocks = note_blocks(tables, records_lib.git_revision(),
                         datetime.datetime.now(datetime.timezone.utc).strftime(
                             '%Y-%m-%d %H:%M UTC'))
    write_note(args.note, blocks, names)
  if args.plot:
    # A row counts as a claim only with every seed: the plot shows those rows only.
    plot([(row[1], [v for _, v in runs]) for row, runs in finished if len(runs) == len(seeds)],
         args.plot)
  records = changed_records(args.out, records)
  if records:
    records_lib.append_records(args.out, records)


def changed_records(path, records):
  """records less those whose (name, metric) already has the same per-seed values and seeds
  in its latest record at `path`: --record after every finished row appends only what
  changed."""
  latest = {}
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        r = json.loads(line)
        if r.get('name', '').startswith('selfboottok_seeds_table/'):
          latest[r['name'], r['metric']] = (r.get('per_seed'), r.get('seeds'))
  return [r for r in records
          if latest.get((r['name'], r['metric'])) != (r['per_seed'], r['seeds'])]


if __name__ == '__main__':
  main()

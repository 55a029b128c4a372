"""benchmarks/selfboottok_seeds_table.py: mean +- std over the seeds that finished, FLOPs."""
import json
import os

import pytest

from benchmarks import selfboottok_seeds_table as table


def _results(path, metrics):
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, 'results.json'), 'w') as f:
    json.dump({'metrics': metrics}, f)


def _generator(path, gfd, nll=2.0):
  _results(path / 'eval_fd' / 'n10000', {'gfd_vgg_partial@10000': gfd})
  with open(path / 'eval_final.json', 'w') as f:
    json.dump({'eval/loss': nll, 'eval/accuracy': 0.5}, f)


def _recon(psnr):
  return {'psnr': psnr, 'ssim': 0.5, 'lpips': 0.3, 'rfd_vgg': 20.0, 'codes_used': 256.0,
          'codebook_perplexity': 10 * psnr}


@pytest.fixture(autouse=True)
def _no_archive(tmp_path, monkeypatch):
  """The committed benchmarks/runs/ must not leak into a test that sets no --archive."""
  monkeypatch.setenv('ARCHIVE', str(tmp_path / 'no_archive'))


def _tables(out, horizon=False):
  """The printed mean +- std and diagnostics tables (the horizon's with horizon=True), each
  as {first cell: cells}. The output: 3 tables, a 'At 3x the steps:' line, 3 tables, a line
  introducing the readings, 3 tables."""
  blocks = out.strip().split('\n\n')
  assert len(blocks) == 11 and blocks[3] == 'At 3x the steps:'
  assert blocks[7].startswith('The readings of the method')
  main, diagnostics = blocks[4:6] if horizon else blocks[:2]
  return [{line.split(' | ')[0][2:]: line.split(' | ') for line in t.splitlines()[2:]
           if line.startswith('|')} for t in (main, diagnostics)]


def test_rows_average_finished_seeds_and_record_only_complete_rows(tmp_path, capsys):
  seeds_root, adv_root, out = tmp_path / 'seeds', tmp_path / 'adv', tmp_path / 'r.jsonl'
  for s, (psnr, gfd) in enumerate([(15.0, 20.0), (17.0, 24.0)]):
    _results(adv_root / f'titok8_s{s}' / 'eval' / 'test_all', _recon(psnr))
    _generator(adv_root / f'gen_titok8_s{s}', gfd, nll=2.0 + s)
  # SelfBootTok: seed 0 complete; seed 1 has its reconstruction but no gFD yet.
  _results(seeds_root / 'sbt_ot_s0' / 'eval' / 'test_all_generate', _recon(14.0))
  _generator(seeds_root / 'gen_sbt_ot_s0', 30)
  _results(seeds_root / 'sbt_ot_s1' / 'eval' / 'test_all_generate', _recon(16.0))
  with open(out, 'w') as f:
    for bench, metric, value in [('train_ids', 'flops_per_step', 5.87e9),
                                 ('sample', 'flops_per_image', 2.84e8),
                                 ('sample', 'images_per_s', 300.0)]:
      f.write(json.dumps({'name': f'selfboottok_seeds/titok8/{bench}/float32',
                          'metric': metric, 'value': value}) + '\n')

  table.main(['--seeds', '0,1', '--seeds_root', str(seeds_root), '--adv_root',
              str(adv_root), '--out', str(out), '--record', '--plot', str(tmp_path / 'p.png')])
  rows, diagnostics = _tables(capsys.readouterr().out)
  titok8 = rows['TiTok, G=8']
  assert titok8[1] == '2' and titok8[2] == '16 ± 1.4' and titok8[6] == '22 ± 2.8'
  assert titok8[7] == '2.5 ± 0.71' and titok8[8:] == ['5.87', '0.284 |']
  sbt = rows["SelfBootTok 'ot', generate (G=8 ids)"]
  assert sbt[1] == '1' and sbt[2] == '14 ± 0' and sbt[6] == '30 ± 0' and sbt[8] == '-'
  assert rows['TiTok, G+L=16'][1:3] == ['0', '-']
  # Global-id perplexity of the compress-mode evals (test_all); SelfBootTok has only a
  # generate-mode eval here, so it has no diagnostics row.
  assert diagnostics['TiTok, G=8'][1:3] == ['2', '160 ± 14']
  assert diagnostics['TiTok, G=8'][3:] == ['-', '- |'] and len(diagnostics) == 1

  with open(out) as f:
    records = [json.loads(line) for line in f][3:]
  assert {r['name'] for r in records} == {'selfboottok_seeds_table/titok8'}
  gfd, = [r for r in records if r['metric'] == 'gfd_vgg_partial@10000']
  assert gfd['per_seed'] == [20.0, 24.0] and gfd['value'] == 22.0 and gfd['seeds'] == [0, 1]
  # Again with the same results: nothing new to record; a changed seed: only its metrics.
  args = ['--seeds', '0,1', '--seeds_root', str(seeds_root), '--adv_root', str(adv_root),
          '--out', str(out), '--record']
  table.main(args)
  _generator(adv_root / 'gen_titok8_s1', 26.0, nll=3.0)
  table.main(args)
  with open(out) as f:
    again = [json.loads(line) for line in f][3 + len(records):]
  assert [(r['metric'], r['per_seed']) for r in again] == [
      ('gfd_vgg_partial@10000', [20.0, 26.0])]
  with open(tmp_path / 'p.png', 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_horizon_rows_follow_the_variant_the_horizon_driver_ran(tmp_path, capsys):
  seeds_root = tmp_path / 'seeds'
  # selfboottok_horizon.sh with SBT_VARIANT=ema: sbt_ema_3x_s0 and its generator.
  _results(seeds_root / 'sbt_ema_3x_s0' / 'eval' / 'test_all_generate', _recon(16.5))
  _generator(seeds_root / 'gen_sbt_ema_3x_s0', 19.0)
  # A run of the 1x protocol must not be read as the horizon's.
  _results(seeds_root / 'titok8_s0' / 'eval' / 'test_all', _recon(15.0))

  table.main(['--seeds', '0', '--seeds_root', str(seeds_root), '--adv_root',
              str(tmp_path / 'adv'), '--out', str(tmp_path / 'r.jsonl'),
              '--horizon_variant', 'ema'])
  rows, _ = _tables(capsys.readouterr().out, horizon=True)
  ema = rows["SelfBootTok 'ema', generate, 3x steps"]
  assert ema[1:3] == ['1', '16.5 ± 0'] and ema[6] == '19 ± 0'
  assert rows['TiTok, G=8, 3x steps'][1] == '0'
  assert "SelfBootTok 'ot', generate, 3x steps" not in rows


def test_horizon_gfd_is_paired_with_titok8_at_3x(tmp_path, capsys):
  seeds_root, adv_root = tmp_path / 'seeds', tmp_path / 'adv'
  _results(adv_root / 'titok8_s0' / 'eval' / 'test_all', _recon(15.0))
  _generator(adv_root / 'gen_titok8_s0', 30.0)  # the 1x TiTok-8: not the horizon's base
  for name, gfd in (('titok8_3x_s0', 18.0), ('sbt_ot_3x_s0', 17.5)):
    _results(seeds_root / name / 'eval' / ('test_all' if 'titok' in name else
                                           'test_all_generate'), _recon(16.0))
    _generator(seeds_root / f'gen_{name}', gfd)

  table.main(['--seeds', '0', '--seeds_root', str(seeds_root), '--adv_root', str(adv_root),
              '--out', str(tmp_path / 'r.jsonl')])
  blocks = capsys.readouterr().out.strip().split('\n\n')
  assert len(blocks) == 11
  horizon = blocks[6].splitlines()
  assert horizon[0].endswith('| minus TiTok-8 3x, same seed |')
  assert horizon[2:] == ['| TiTok, G=8, 3x steps | 18.00 | - |',
                         "| SelfBootTok 'ot', generate, 3x steps | 17.50 | -0.50 |"]


def test_runs_missing_from_the_workdirs_are_read_from_the_archive(tmp_path, capsys):
  seeds_root, adv_root, archive = tmp_path / 'seeds', tmp_path / 'adv', tmp_path / 'runs'
  # TiTok-8 seed 0 finished on another machine: only its archived copy is here (adv root).
  _results(archive / 'adv' / 'titok8_s0' / 'eval' / 'test_all', _recon(15.0))
  _generator(archive / 'adv' / 'gen_titok8_s0', 20.0)
  # Seed 1 is in both; the workdir's files win.
  for root, psnr in ((adv_root, 17.0), (archive / 'adv', 99.0)):
    _results(root / 'titok8_s1' / 'eval' / 'test_all', _recon(psnr))
    _generator(root / 'gen_titok8_s1', 22.0)
  # The archive follows the seeds root's name: SEEDS_ROOT=.../seeds -> runs/seeds.
  _results(archive / 'seeds' / 'titok16_s0' / 'eval' / 'test_all', _recon(16.0))
  _generator(archive / 'seeds' / 'gen_titok16_s0', 21.0)

  table.main(['--seeds', '0,1', '--seeds_root', str(seeds_root), '--adv_root', str(adv_root),
              '--archive', str(archive), '--out', str(tmp_path / 'r.jsonl')])
  rows, _ = _tables(capsys.readouterr().out)
  assert rows['TiTok, G=8'][1:3] == ['2', '16 ± 1.4']
  assert rows['TiTok, G+L=16'][1:3] == ['1', '16 ± 0']


def test_per_seed_gfd_is_paired_with_titok8_of_the_same_seed(tmp_path, capsys):
  seeds_root, adv_root = tmp_path / 'seeds', tmp_path / 'adv'
  for s, gfd in enumerate([20.0, 22.0]):
    _results(adv_root / f'titok8_s{s}' / 'eval' / 'test_all', _recon(15.0))
    _generator(adv_root / f'gen_titok8_s{s}', gfd)
  _results(seeds_root / 'sbt_ot_s1' / 'eval' / 'test_all_generate', _recon(15.0))
  _generator(seeds_root / 'gen_sbt_ot_s1', 21.0)  # seed 1 only: paired with 22.0

  table.main(['--seeds', '0,1', '--seeds_root', str(seeds_root), '--adv_root',
              str(adv_root), '--out', str(tmp_path / 'r.jsonl')])
  per_seed = capsys.readouterr().out.split('\n\n')[2].splitlines()
  assert per_seed[2] == '| TiTok, G=8 | 20.00 | 22.00 | - |'
  assert per_seed[3] == "| SelfBootTok 'ot', generate (G=8 ids) | - | 21.00 | -1.00 |"
  assert len(per_seed) == 4


def test_paired_differences_get_their_mean_and_std(tmp_path, capsys):
  seeds_root, adv_root = tmp_path / 'seeds', tmp_path / 'adv'
  for s, (base, sbt) in enumerate([(20.0, 19.0), (22.0, 19.0), (21.0, 21.0)]):
    _results(adv_root / f'titok8_s{s}' / 'eval' / 'test_all', _recon(15.0))
    _generator(adv_root / f'gen_titok8_s{s}', base)
    _results(seeds_root / f'sbt_ot_s{s}' / 'eval' / 'test_all_generate', _recon(15.0))
    _generator(seeds_root / f'gen_sbt_ot_s{s}', sbt)

  table.main(['--seeds_root', str(seeds_root), '--adv_root', str(adv_root),
              '--out', str(tmp_path / 'r.jsonl')])
  per_seed = capsys.readouterr().out.split('\n\n')[2].splitlines()
  assert per_seed[3] == ("| SelfBootTok 'ot', generate (G=8 ids) | 19.00 | 19.00 | 21.00 | "
                         '-1.00, -3.00, +0.00 (mean -1.33 ± 1.53) |')


def test_note_blocks_are_rewritten_between_their_markers_only(tmp_path, capsys):
  seeds_root, adv_root = tmp_path / 'seeds', tmp_path / 'adv'
  _results(adv_root / 'titok8_s0' / 'eval' / 'test_all', _recon(15.0))
  _generator(adv_root / 'gen_titok8_s0', 20.0)
  _results(seeds_root / 'titok8_3x_s0' / 'eval' / 'test_all', _recon(16.0))
  _generator(seeds_root / 'gen_titok8_3x_s0', 18.0)
  note = tmp_path / 'note.md'
  original = ('# Note\n\nfindings stay\n<!-- tables -->\nold table\n<!-- /tables -->\n'
              'between\n<!-- per_seed -->\nold seeds\n<!-- /per_seed -->\nand\n'
              '<!-- horizon -->\nold horizon\n<!-- /horizon -->\nend\n'
              '<!-- variants -->\nold variants\n<!-- /variants -->\n')
  note.write_text(original)
  args = ['--seeds', '0', '--seeds_root', str(seeds_root), '--adv_root', str(adv_root),
          '--archive', str(tmp_path / 'runs'), '--out', str(tmp_path / 'r.jsonl'),
          '--note', str(note)]
  table.main(args)
  blocks = capsys.readouterr().out.split('rewrote')[0].strip().split('\n\n')
  text = note.read_text()
  assert text.startswith('# Note\n\nfindings stay\n<!-- tables -->\nAs of `')
  assert 'old table' not in text and 'old seeds' not in text and 'old horizon' not in text

  def block(name):
    return text.split(f'<!-- {name} -->\n')[1].split(f'\n<!-- /{name} -->')[0]

  assert blocks[0] in block('tables') and blocks[1] in block('tables')
  assert block('per_seed') == blocks[2]
  horizon = block('horizon')
  assert horizon.startswith('As of `') and all(b in horizon for b in blocks[4:7])
  assert horizon.endswith('Per seed, paired with TiTok-8 at 3x the steps:\n\n' + blocks[6])
  assert block('variants').endswith("with SelfBootTok 'ot':\n\n" + blocks[10])
  assert text.endswith('<!-- /tables -->\nbetween\n<!-- per_seed -->\n' + blocks[2]
                       + '\n<!-- /per_seed -->\nand\n<!-- horizon -->\n' + horizon
                       + '\n<!-- /horizon -->\nend\n<!-- variants -->\n' + block('variants')
                       + '\n<!-- /variants -->\n')

  # --note_blocks horizon: the other blocks stay as written.
  note.write_text(original)
  table.main(args + ['--note_blocks', 'horizon'])
  text = note.read_text()
  assert block('horizon').startswith('As of `') and block('horizon').endswith(blocks[6])
  assert text == original.replace('old horizon', block('horizon'))
  with pytest.raises(SystemExit, match="--note_blocks: unknown block 'tabels'; choose from"):
    table.main(args + ['--note_blocks', 'tabels'])

  with pytest.raises(SystemExit, match=r'--note .*missing.md: cannot read it \(No such file'):
    table.main(args[:-1] + [str(tmp_path / 'missing.md')])

  # A note without a block's markers: one line naming it, the file untouched.
  note.write_text('# Note\n<!-- tables -->\nx\n<!-- /tables -->\n')
  with pytest.raises(SystemExit, match='no <!-- per_seed --> ... <!-- /per_seed --> block'):
    table.main(args)
  assert note.read_text() == '# Note\n<!-- tables -->\nx\n<!-- /tables -->\n'


def test_readings_are_paired_with_titok8_and_with_ot_and_plotted_only_with_every_seed(
    tmp_path, capsys):
  seeds_root, adv_root = tmp_path / 'seeds', tmp_path / 'adv'
  gfds = {'titok8': (20.0, 22.0), 'sbt_ot': (19.0, 21.0), 'sbt_ema': (18.0, 21.5)}
  for name, (g0, g1) in gfds.items():
    root = adv_root if name == 'titok8' else seeds_root
    for s, gfd in enumerate((g0, g1)):
      _results(root / f'{name}_s{s}' / 'eval' / ('test_all' if name == 'titok8' else
                                                 'test_all_generate'), _recon(15.0))
      _generator(root / f'gen_{name}_s{s}', gfd)
  # The latent control is no reading: not in the readings' tables. Seed 0 only: not plotted.
  _results(seeds_root / 'sbt_latent_s0' / 'eval' / 'test_all_generate', _recon(15.0))
  _generator(seeds_root / 'gen_sbt_latent_s0', 30.0)
  plotted = []
  table_plot = table.plot
  try:
    table.plot = lambda rows, path: plotted.extend(label for label, _ in rows)
    table.main(['--seeds', '0,1', '--seeds_root', str(seeds_root), '--adv_root', str(adv_root),
                '--out', str(tmp_path / 'r.jsonl'), '--plot', str(tmp_path / 'p.png')])
  finally:
    table.plot = table_plot
  blocks = capsys.readouterr().out.strip().split('\n\n')
  readings = {line.split(' | ')[0][2:]: line for line in blocks[10].splitlines()[2:]}
  assert blocks[10].splitlines()[0].endswith(
      "| minus TiTok-8, same seed | minus 'ot', same seed |")
  assert readings['TiTok, G=8'] == '| TiTok, G=8 | 20.00 | 22.00 | - | - |'
  assert readings["SelfBootTok 'ot', generate (G=8 ids)"].endswith(
      '| -1.00, -1.00 (mean -1.00 ± 0.00) | - |')
  assert readings['SelfBootTok, EMA-teacher targets, generate'].endswith(
      '| 18.00 | 21.50 | -2.00, -0.50 (mean -1.25 ± 1.06) | -1.00, +0.50 (mean -0.25 ± 1.06) |')
  assert not any('latent' in row for row in readings)
  assert len(readings) == 3  # rows without a finished seed are left out
  assert 'SelfBootTok, EMA-teacher targets, generate' in plotted
  assert not any('latent' in label for label in plotted)

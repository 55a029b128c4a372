"""sbt_jax.tools.plot_metrics: PNG of a run's curves, milestone table, one-line errors."""
import json
import os
import subprocess
import sys

import pytest

from sbt_jax.tools import plot_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_run(workdir, eval_psnr, loss_scale=1.0):
  """A 1,500-step run: train rows every 50 steps, eval rows at 500/1000/1500 as the loop
  writes them, plus the step-0 num_params row, a resumed (repeated) step and a cut line."""
  os.makedirs(workdir)
  rows = [{'step': 0, 'num_params': 1000.0}]
  for step in range(50, 1501, 50):
    rows.append({'step': step, 'train/loss': loss_scale / step, 'train/images_per_sec': 100.0})
    if step in eval_psnr:
      rows.append({'step': step, 'eval/psnr': eval_psnr[step], 'eval/num_images': 10000.0})
  rows.append({'step': 1500, 'train/loss': loss_scale * 0.5})  # resumed: the last one counts
  with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as f:
    f.writelines(json.dumps(r) + '\n' for r in rows)
    f.write('{"step": 1550, "train/lo')  # cut by a kill


def _table_rows(stdout):
  """{(run, step): [cells]} of the markdown table printed by main()."""
  out = {}
  for line in stdout.splitlines()[2:]:
    if not line.startswith('| '):
      continue
    cells = [c.strip() for c in line.strip('|').split('|')]
    out[(cells[0], int(cells[1]))] = cells[2:]
  return out


def test_png_and_milestone_table(tmp_path, capsys):
  a, b = str(tmp_path / 'run_a'), str(tmp_path / 'run_b')
  _write_run(a, {500: 15.66, 1000: 16.69, 1500: 17.06})
  _write_run(b, {1500: 16.0}, loss_scale=2.0)
  out = str(tmp_path / 'curves' / 'ab.png')
  plot_metrics.main(['--workdir', a, '--workdir', b, '--out', out,
                     '--metrics', 'train/loss,eval/psnr', '--milestones', '500,1000,1520'])
  with open(out, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  stdout = capsys.readouterr().out
  assert stdout.splitlines()[0] == '| run | step | train/loss | eval/psnr |'
  rows = _table_rows(stdout)
  assert rows[('run_a', 500)] == ['0.002', '15.66']
  assert rows[('run_a', 1000)] == ['0.001', '16.69']
  # 1520 is not logged: the nearest step (1500) is used and named; its repeated row wins.
  assert rows[('run_a', 1520)] == ['0.5 (step 1500)', '17.06 (step 1500)']
  assert rows[('run_b', 500)] == ['0.004', '16 (step 1500)']
  assert rows[('run_b', 1520)] == ['1 (step 1500)', '16 (step 1500)']


def test_default_metrics_and_milestone(tmp_path, capsys):
  run = str(tmp_path / 'w')
  _write_run(run, {500: 15.0, 1500: 17.0})
  plot_metrics.main(['--workdir', run, '--out', str(tmp_path / 'c.png')])
  stdout = capsys.readouterr().out
  # train/loss and eval/* (not eval/num_images, not other train/* metrics); the last step.
  assert stdout.splitlines()[0] == '| run | step | train/loss | eval/psnr |'
  assert _table_rows(stdout) == {('w', 1500): ['0.5', '17']}
  assert os.path.getsize(tmp_path / 'c.png') > 0


@pytest.mark.parametrize('case', ['no_workdir', 'no_jsonl', 'unknown_metric', 'bad_milestones'])
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, case):
  run = str(tmp_path / 'w')
  _write_run(run, {1500: 17.0})
  argv = ['--workdir', run, '--out', str(tmp_path / 'c.png')]
  expected = {'no_workdir': 'no such workdir', 'no_jsonl': 'no metrics.jsonl in',
              'unknown_metric': "unknown metric 'eval/fid'", 'bad_milestones': '--milestones'}
  if case == 'no_workdir':
    argv[1] = str(tmp_path / 'missing')
  elif case == 'no_jsonl':
    os.remove(os.path.join(run, 'metrics.jsonl'))
  elif case == 'unknown_metric':
    argv += ['--metrics', 'eval/psnr,eval/fid']
  else:
    argv += ['--milestones', '500,x']
  with pytest.raises(SystemExit) as exc:
    plot_metrics.main(argv)
  assert exc.value.code == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and err.startswith('plot_metrics: error: ')
  assert expected[case] in err
  assert not os.path.exists(tmp_path / 'c.png')


def test_command_line_error_has_no_traceback(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'sbt_jax.tools.plot_metrics', '--workdir',
       str(tmp_path / 'missing'), '--out', str(tmp_path / 'c.png')],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert proc.returncode == 2
  assert proc.stderr == f'plot_metrics: error: no such workdir: {tmp_path / "missing"}\n'

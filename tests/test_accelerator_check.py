"""benchmarks/accelerator_check.sh: its CPU dry mode runs every step of the device check at
tiny sizes and writes the records to the file it is given; the peak FLOP/s table and MFU."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = 'benchmarks/accelerator_check.sh'
sys.path.insert(0, os.path.join(REPO, 'benchmarks'))
import accelerator_check  # pylint: disable=g-import-not-at-top,wrong-import-position

TRAIN = 'device_check/s128,runlocal/train/bfloat16'


def test_peak_flops_table_and_mfu():
  assert accelerator_check.peak_flops('NVIDIA H100 80GB HBM3') == (989e12, 'PEAK_BF16_FLOPS')
  assert accelerator_check.peak_flops('TPU v5 lite')[0] == 197e12  # v5e
  assert accelerator_check.peak_flops('TPU v5')[0] == 459e12  # v5p
  assert accelerator_check.peak_flops('cpu') == (None, None)
  assert accelerator_check.peak_flops('cpu', 2e12) == (2e12, '--peak_flops')
  assert accelerator_check.mfu(494.5e12, 989e12) == pytest.approx(0.5)
  assert accelerator_check.mfu(1e12, None) is None


def test_dry_mode_refuses_the_real_results_file():
  result = subprocess.run([SCRIPT, '--dry'], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, RESULTS='benchmarks/results.jsonl'),
                          timeout=60, check=False)
  assert result.returncode == 2 and 'benchmarks/results.jsonl' in result.stderr
  result = subprocess.run([SCRIPT, '--dyr'], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
  assert result.returncode == 2 and "'--dyr'" in result.stderr


def test_dry_mode_runs_every_step_and_records_it(tmp_path):
  real = os.path.join(REPO, 'benchmarks', 'results.jsonl')
  real_before = os.stat(real).st_mtime_ns
  out = tmp_path / 'results.jsonl'
  result = subprocess.run([SCRIPT, '--dry'], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, RESULTS=str(out)), timeout=900, check=False)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  assert os.stat(real).st_mtime_ns == real_before
  records = [json.loads(line) for line in out.read_text().splitlines()]
  by = {(r['name'], r['metric']): r for r in records}
  for r in records:  # every record says what ran, at which revision, on what
    assert r['command'] and r['git'] and r['device'].startswith('cpu') and r['date']

  tests = by['device_check/fast_tests', 'tests_failed']
  assert tests['value'] == 0 and tests['tests'] == 2 and tests['device_kind'] == 'cpu'

  train = {m: by[TRAIN, m] for n, m in by if n == TRAIN}
  assert set(train) == {'images_per_s', 'step_time_s', 'flops_per_step', 'achieved_flops_per_s',
                        'mfu', 'peak_bytes_in_use', 'compiled_peak_bytes'}
  step_s, flops = train['step_time_s']['value'], train['flops_per_step']['value']
  assert step_s > 0 and flops > 1e8
  assert train['images_per_s']['value'] == pytest.approx(2 / step_s)
  assert train['achieved_flops_per_s']['value'] == pytest.approx(flops / step_s)
  # A CPU has no peak in the table and no device memory stats: both stay null.
  assert train['mfu']['value'] is None and train['mfu']['peak_flops_per_s'] is None
  assert train['peak_bytes_in_use']['value'] is None
  assert train['compiled_peak_bytes']['value'] > 0
  assert train['mfu']['device_kind'] == 'cpu' and train['mfu']['batch'] == 2

  (sample,) = [r for r in records if r['name'].startswith('device_check/maskgit_over_s128/sample/')
               and r['metric'] == 'images_per_s']
  assert sample['value'] > 0 and sample['batch'] == 4

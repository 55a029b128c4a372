"""The multi_device mark of tests/conftest.py and benchmarks/test_suite_time.py, which times
running the unmarked tests on 1 device against the whole suite on 8."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Stands in for python: logs its SBT_TEST_DEVICES and arguments, exits with the status that
# FAKE_RC_<devices> names.
FAKE_PYTHON = '''#!/usr/bin/env bash
echo "$SBT_TEST_DEVICES $*" >> "$FAKE_LOG"
var=FAKE_RC_$SBT_TEST_DEVICES
exit "${!var:-0}"
'''


def test_a_multi_device_test_on_one_device_is_a_usage_error():
  env = dict(os.environ, SBT_TEST_DEVICES='1')
  cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--co',
         'tests/test_train_step.py']
  result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
  assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
  assert ('marked multi_device and need 8 devices (SBT_TEST_DEVICES=1), e.g. '
          'tests/test_train_step.py::test_eight_devices_data_fsdp_match_one_device'
          in result.stdout + result.stderr)
  # Deselected, the rest collects on one device.
  result = subprocess.run(cmd + ['-m', 'not multi_device'], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stdout + result.stderr
  assert '3/4 tests collected (1 deselected)' in result.stdout


def test_suite_time_benchmark_times_both_arms_and_records_them(tmp_path):
  """benchmarks/test_suite_time.py: the pytest runs of each arm, with their devices and
  marks, summed per arm into one record each; a failing run stops it without a record."""
  fake = tmp_path / 'python'
  fake.write_text(FAKE_PYTHON.replace('exit', 'echo "1 passed in 0.1s"; exit'))
  fake.chmod(0o755)
  log, out = tmp_path / 'calls.log', tmp_path / 'results.jsonl'
  env = dict(os.environ, FAKE_LOG=str(log), FAKE_RC_8='0', FAKE_RC_1='5')
  cmd = [sys.executable, 'benchmarks/test_suite_time.py', 'tests/test_a.py', '--python',
         str(fake), '--out', str(out)]
  result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stdout + result.stderr
  assert log.read_text().splitlines() == [
      '8 -m pytest -q -n 2 -p no:cacheprovider tests/test_a.py',
      '8 -m pytest -q -n 2 -p no:cacheprovider tests/test_a.py -m multi_device',
      '1 -m pytest -q -n 2 -p no:cacheprovider tests/test_a.py -m not multi_device']
  rows = [json.loads(line) for line in out.read_text().splitlines()]
  assert [r['arm'] for r in rows] == ['eight_devices', 'split']
  assert [[(p['devices'], p['mark']) for p in r['parts']] for r in rows] == [
      [(8, None)], [(8, 'multi_device'), (1, 'not multi_device')]]
  for r in rows:
    assert r['benchmark'] == 'test_suite_time' and r['files'] == ['tests/test_a.py']
    assert r['seconds'] == pytest.approx(sum(p['seconds'] for p in r['parts']), abs=0.2)
    assert 'cpu_flags' in r and r['commit'] and r['command'].startswith('python benchmarks/')
  env['FAKE_RC_1'] = '1'
  result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
  assert result.returncode == 1 and 'failed (1)' in result.stderr
  assert len(out.read_text().splitlines()) == 2


def test_a_bad_device_count_is_one_line():
  result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                           '--co', 'tests/test_config.py'], cwd=REPO,
                          env=dict(os.environ, SBT_TEST_DEVICES='0'), capture_output=True,
                          text=True, check=False)
  assert result.returncode != 0
  assert (result.stdout + result.stderr).strip().splitlines()[-1] == (
      "SBT_TEST_DEVICES='0': give a positive number of fake CPU devices")
  assert 'Traceback' not in result.stdout + result.stderr

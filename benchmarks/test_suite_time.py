"""Wall time of test files all on 8 fake devices against split: multi_device ones on 8,
the others in a second pytest run on 1.

  python benchmarks/test_suite_time.py tests/test_loop.py tests/test_golden_losses.py ...

Side by side in one invocation (machines differ): 'eight_devices' runs the files in one
`pytest -q -n 2` with 8 fake CPU devices, as CI does; 'split' runs the multi_device tests
with 8 devices, then the others with 1 (SBT_TEST_DEVICES, tests/conftest.py). Each pytest
run gets a fresh compilation cache (tests/conftest.py makes one per run), so neither reads
the other's programs. Both must pass. Appends one record per arm to --out.
"""
import argparse
import datetime
import os
import subprocess
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import records  # pylint: disable=g-import-not-at-top,wrong-import-position

ARMS = {  # arm -> the pytest runs: (SBT_TEST_DEVICES, -m expression or None)
    'eight_devices': ((8, None),),
    'split': ((8, 'multi_device'), (1, 'not multi_device')),
}


def _pytest(python, files, devices, mark):
  cmd = [python, '-m', 'pytest', '-q', '-n', '2', '-p', 'no:cacheprovider', *files]
  if mark:
    cmd += ['-m', mark]
  env = dict(os.environ, SBT_TEST_DEVICES=str(devices))
  env.pop('JAX_COMPILATION_CACHE_DIR', None)
  start = time.perf_counter()
  result = subprocess.run(cmd, cwd=os.path.dirname(_HERE), env=env, capture_output=True,
                          text=True, check=False)
  seconds = time.perf_counter() - start
  if result.returncode not in (0, 5):  # 5: this mark selected nothing in these files
    sys.exit(f'{" ".join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}')
  return seconds, result.stdout.strip().splitlines()[-1]


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('files', nargs='+', help='test files (or directories) to time')
  parser.add_argument('--arms', default='eight_devices,split', help='comma-separated arms')
  parser.add_argument('--out', default=os.path.join(_HERE, 'results.jsonl'),
                      help="results file ('-': print only)")
  parser.add_argument('--python', default=sys.executable, help='the python that runs pytest')
  a = parser.parse_args()
  unknown = set(a.arms.split(',')) - set(ARMS)
  if unknown:
    sys.exit(f'--arms: unknown {sorted(unknown)}; choose from {sorted(ARMS)}')
  stamp = dict(benchmark='test_suite_time', commit=records.git_revision(),
               device=records.cpu_description(), cpu_flags=records.cpu_flags(),
               command=' '.join(['python', 'benchmarks/test_suite_time.py'] + sys.argv[1:]),
               files=a.files)
  rows = []
  for arm in a.arms.split(','):
    parts = [(d, m, *_pytest(a.python, a.files, d, m)) for d, m in ARMS[arm]]
    row = dict(stamp, arm=arm, seconds=round(sum(p[2] for p in parts), 1),
               parts=[dict(devices=d, mark=m, seconds=round(s, 1), summary=summary)
                      for d, m, s, summary in parts],
               date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
    print(f"{arm}: {row['seconds']} s " + '; '.join(p['summary'] for p in row['parts']),
          flush=True)
    rows.append(row)
  records.append_records(a.out, rows)


if __name__ == '__main__':
  main()

"""The parts of a benchmark record that need no JAX: the CPU, the git revision, appending
records to results.jsonl, and mean +- std over seeds. Used by every benchmark script, including
torch_reference.py, which runs in a PyTorch environment without JAX."""
import json
import os
import platform
import statistics
import subprocess

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_description() -> str:
  """'<CPU model>, <n> cores' (the model from /proc/cpuinfo where there is one)."""
  model = platform.processor()
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          model = line.split(':', 1)[1].strip()
          break
  except OSError:
    pass
  return f'{model}, {os.cpu_count()} cores'


def cpu_flags() -> list[str]:
  """The CPU features that decide a CPU timing (bf16 matmuls: avx512_bf16 / amx_bf16)."""
  try:
    with open('/proc/cpuinfo') as f:
      info = f.read()
  except OSError:
    return []
  return [f for f in ('avx512f', 'avx512_bf16', 'amx_bf16') if f in info]


def git_revision():
  try:
    rev = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=_ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                           cwd=_ROOT, check=True, capture_output=True, text=True).stdout
    return rev + ('+dirty' if dirty.strip() else '')
  except (OSError, subprocess.CalledProcessError):
    return 'unknown'


def append_records(path: str, records) -> None:
  """Appends one JSON object per record to `path` ('' or '-': print only)."""
  if path in ('', '-'):
    return
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'a') as f:
    for r in records:
      f.write(json.dumps(r, sort_keys=True) + '\n')
  print(f'appended {len(records)} records to {path}')


def read_json(path: str):
  with open(path) as f:
    return json.load(f)


def last_metric(path: str, key: str):
  """(step, value) of the last line of a metrics.jsonl that has `key`, or None."""
  found = None
  with open(path) as f:
    for line in f:
      m = json.loads(line)
      if key in m:
        found = (m['step'], m[key])
  return found


def mean_std(values):
  """(mean, sample standard deviation with ddof = 1; 0 for a single value) of `values`."""
  return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

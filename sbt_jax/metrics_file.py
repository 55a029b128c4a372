"""Reading a run's metrics.jsonl (rows {"step": s, name: value, ...}; trainers/writers.py)."""
import json

from sbt_jax import paths


def read(path: str) -> dict[str, dict[int, float]]:
  """{metric: {step: value}} of every numeric metric; a step logged twice (a resumed run
  appends) keeps its last value; lines cut by an interrupted run are skipped. {} without
  the file."""
  series = {}
  if not paths.isfile(path):
    return series
  with paths.open_file(path) as f:
    for line in f:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue
      if not isinstance(row, dict) or not isinstance(row.get('step'), (int, float)):
        continue
      for name, value in row.items():
        if name != 'step' and isinstance(value, (int, float)) and not isinstance(value, bool):
          series.setdefault(name, {})[int(row['step'])] = float(value)
  return series

"""Metric writers: clu's default writer (TensorBoard + log) plus a metrics.jsonl file."""
import json

import jax
import numpy as np
from clu import metric_writers

from sbt_jax import paths


class JsonlWriter(metric_writers.MetricWriter):
  """Appends {'step': s, name: value, ...} lines to <workdir>/metrics.jsonl."""

  def __init__(self, path: str):
    self._path = path

  def write_scalars(self, step, scalars):
    row = {'step': int(step)}
    row.update({k: float(np.asarray(v)) for k, v in scalars.items()})
    with paths.open_file(self._path, 'a') as f:
      f.write(json.dumps(row) + '\n')

  def write_summaries(self, step, values, metadata=None):
    pass

  def write_images(self, step, images):
    pass

  def write_videos(self, step, videos):
    pass

  def write_audios(self, step, audios, *, sample_rate):
    pass

  def write_texts(self, step, texts):
    pass

  def write_histograms(self, step, arrays, num_buckets=None):
    pass

  def write_hparams(self, hparams):
    pass

  def flush(self):
    pass

  def close(self):
    pass


def create_writer(workdir: str) -> metric_writers.MetricWriter:
  """Process 0 writes TensorBoard events and metrics.jsonl; others only log."""
  if jax.process_index() != 0:
    return metric_writers.create_default_writer(workdir, just_logging=True)
  return metric_writers.MultiWriter([
      metric_writers.create_default_writer(workdir, asynchronous=False),
      JsonlWriter(paths.join(workdir, 'metrics.jsonl')),
  ])

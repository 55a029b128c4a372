"""A fake gs:// for tests: every gs://BUCKET/KEY lives under a local folder instead.

Two layers see a gs:// path in sbt_jax: etils epath (everything sbt_jax and Orbax's metadata
write, through sbt_jax/paths.py) and TensorStore (the array bytes of Orbax checkpoints,
with its own GCS driver). The first is faked with `epath.testing.mock_epath`, the second by
giving Orbax a local 'file' kvstore where it would build a 'gcs' one (and a bucket without a
hierarchical namespace, which Orbax would ask Cloud Storage about). TensorBoard event
files go through TensorFlow's own gfile (not faked): the fixture turns them off for gs://
workdirs, keeping metrics.jsonl and the log. (etils picks its TensorFlow backend for gs://
when TensorFlow is installed, past mock_epath's table; that choice is switched off too.)

  with fake_gcs.mounted(tmp_path / 'gcs') as fs:
    loop.train_and_evaluate(config, 'gs://bucket/run')
    fs.local('gs://bucket/run/config.json')    # where the bytes really are
"""
import contextlib
import dataclasses
import os
from unittest import mock

from clu import metric_writers
from etils.epath import gpath
from etils.epath import testing as epath_testing
from orbax.checkpoint._src.path import gcs_utils

_PREFIX = 'gs://'


@dataclasses.dataclass
class FakeGcs:
  root: str
  touched: set  # the gs:// paths epath was asked about (what went through the fake)

  def local(self, path) -> str:
    path = os.fspath(path)
    assert path.startswith(_PREFIX), path
    return os.path.join(self.root, path[len(_PREFIX):])

  def remote(self, path) -> str:
    return _PREFIX + os.path.relpath(os.fspath(path), self.root)

  def _map(self, path):
    path = os.fspath(path)
    if path.startswith(_PREFIX):
      self.touched.add(path)
      return self.local(path)
    return path


@contextlib.contextmanager
def mounted(root):
  fs = FakeGcs(str(root), set())
  os.makedirs(fs.root, exist_ok=True)

  def one(original, path, *args, **kwargs):
    return original(fs._map(path), *args, **kwargs)

  def two(original, path, dst, *args, **kwargs):
    return original(fs._map(path), fs._map(dst), *args, **kwargs)

  def glob(original, pattern):
    remote = os.fspath(pattern).startswith(_PREFIX)
    found = original(fs._map(pattern))
    return [fs.remote(p) for p in found] if remote else found

  def walk(original, top, **kwargs):
    remote = os.fspath(top).startswith(_PREFIX)
    for dirpath, dirnames, filenames in original(fs._map(top), **kwargs):
      yield (fs.remote(dirpath) if remote else dirpath), dirnames, filenames

  def kvstore(path):  # Orbax asks for TensorStore's GCS driver: give it a local folder.
    return {'driver': 'file', 'path': fs.local(path)}

  real_writer = metric_writers.create_default_writer

  def default_writer(logdir, *args, **kwargs):
    if str(logdir).startswith(_PREFIX):
      kwargs['just_logging'] = True
    return real_writer(logdir, *args, **kwargs)

  with epath_testing.mock_epath(
      open=one, exists=one, isdir=one, listdir=one, makedirs=one, mkdir=one, remove=one,
      rmtree=one, stat=one, rename=two, replace=two, copy=two, glob=glob, walk=walk), \
      mock.patch.object(gpath, '_is_tf_installed', lambda: False), \
      mock.patch.object(gcs_utils, 'get_kvstore_for_gcs', kvstore), \
      mock.patch.object(gcs_utils, 'is_hierarchical_namespace_enabled', lambda path: False), \
      mock.patch.object(metric_writers, 'create_default_writer', default_writer):
    yield fs

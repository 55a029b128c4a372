"""8 fake CPU devices for every test (set before any JAX backend starts) + shared fixtures."""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# glibc's default malloc (sbt_jax/host_memory.py): the single arena that makes big training
# steps faster makes these compile-bound tests ~5% slower. test_host_memory sets its own mode.
os.environ.setdefault('SBT_JAX_HOST_MALLOC', 'default')

import jax  # pylint: disable=g-import-not-at-top

jax.config.update('jax_num_cpu_devices', 8)

import pytest  # pylint: disable=g-import-not-at-top

from tests import fakes  # pylint: disable=g-import-not-at-top


@pytest.fixture(scope='session', autouse=True)
def subprocess_compilation_cache(tmp_path_factory):
  """A persistent XLA compilation cache for the `python -m sbt_jax...` processes tests start.

  Set after JAX was imported here, so this process (and every in-process test) compiles as
  usual; only child processes read the variable. The command-line tests start processes that
  compile the same programs one after the other (kill, resume, resume again), and share
  them through this per-worker folder instead of compiling each again.
  """
  if 'JAX_COMPILATION_CACHE_DIR' in os.environ:
    yield os.environ['JAX_COMPILATION_CACHE_DIR']
    return
  path = str(tmp_path_factory.mktemp('jax_compilation_cache'))
  os.environ['JAX_COMPILATION_CACHE_DIR'] = path
  try:
    yield path
  finally:
    os.environ.pop('JAX_COMPILATION_CACHE_DIR', None)


@pytest.fixture(scope='session')
def fmnist_data_dir(tmp_path_factory):
  """TFDS data_dir holding fashion_mnist_deb built from tiny fake IDX files (40/20 images)."""
  tmp = tmp_path_factory.mktemp('fmnist_session')
  with pytest.MonkeyPatch.context() as mp:
    return fakes.build_fake_tfds(tmp, mp)


@pytest.fixture(scope='session')
def tiny_workdir(fmnist_data_dir, tmp_path_factory):
  """Workdir of a 4-step runlocal TiTok run on the fake data (checkpoints at 2 and 4).

  Shared by tests that only read it (inference, evaluation); they write elsewhere or under
  its eval/ folder.
  """
  from configs import titok_fmnist  # pylint: disable=g-import-not-at-top
  from sbt_jax.trainers import loop  # pylint: disable=g-import-not-at-top
  c = titok_fmnist.get_config('runlocal')
  c.data.data_dir = fmnist_data_dir
  c.loss.perceptual_weight = 0.0
  c.train.eval_every = -1
  workdir = str(tmp_path_factory.mktemp('tiny_run') / 'w')
  loop.train_and_evaluate(c, workdir)
  return workdir


@pytest.fixture(scope='session')
def tiny_sbt_workdir(fmnist_data_dir, tmp_path_factory):
  """Workdir of a 4-step runlocal SelfBootTok run on the fake data (checkpoints at 2 and 4)."""
  from configs import selfboottok_fmnist  # pylint: disable=g-import-not-at-top
  from sbt_jax.trainers import loop  # pylint: disable=g-import-not-at-top
  c = selfboottok_fmnist.get_config('runlocal')
  c.data.data_dir = fmnist_data_dir
  c.train.eval_every = -1
  workdir = str(tmp_path_factory.mktemp('tiny_sbt_run') / 'w')
  loop.train_and_evaluate(c, workdir)
  return workdir


@pytest.fixture(scope='session')
def tiny_aligner_workdir(tiny_sbt_workdir, fmnist_data_dir, tmp_path_factory):
  """A 4-step aligner-stage run (a wider aligner) against `tiny_sbt_workdir`."""
  from configs import selfboottok_fmnist  # pylint: disable=g-import-not-at-top
  from sbt_jax.trainers import loop  # pylint: disable=g-import-not-at-top
  c = selfboottok_fmnist.get_config('runlocal,aligner')
  c.data.data_dir = fmnist_data_dir
  c.aligner.tokenizer_workdir = tiny_sbt_workdir
  c.train.eval_every = 0  # eval at the end: both modes with the merged params
  workdir = str(tmp_path_factory.mktemp('aligner_run') / 'w')
  loop.train_and_evaluate(c, workdir)
  return workdir

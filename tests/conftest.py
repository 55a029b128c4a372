"""Fake CPU devices for the tests (set before any JAX backend starts) + shared fixtures.

SBT_TEST_DEVICES (default 8, what CI runs) sets how many. Tests marked `multi_device`
(sharded steps compared with one device) need MULTI_DEVICES; every other test runs on any
count, e.g. `SBT_TEST_DEVICES=1 pytest -m 'not multi_device' tests/test_x.py`, where tiny
steps are not split 8 ways (docs/development.md: measured, and why CI does not split).
"""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# glibc's default malloc (sbt_jax/host_memory.py): the single arena that makes big training
# steps faster makes these compile-bound tests ~5% slower. test_host_memory sets its own mode.
os.environ.setdefault('SBT_JAX_HOST_MALLOC', 'default')

import jax  # pylint: disable=g-import-not-at-top

MULTI_DEVICES = 8
_devices = os.environ.get('SBT_TEST_DEVICES', str(MULTI_DEVICES))
if not _devices.isdigit() or int(_devices) < 1:
  raise SystemExit(f'SBT_TEST_DEVICES={_devices!r}: give a positive number of fake CPU devices')
NUM_DEVICES = int(_devices)
jax.config.update('jax_num_cpu_devices', NUM_DEVICES)

import pytest  # pylint: disable=g-import-not-at-top

from tests import fakes  # pylint: disable=g-import-not-at-top


@pytest.hookimpl(trylast=True)  # after -m has deselected
def pytest_collection_modifyitems(config, items):
  """A multi_device test selected on fewer devices is a usage error, not a failure or a skip."""
  del config
  need = [i.nodeid for i in items if i.get_closest_marker('multi_device')]
  if need and NUM_DEVICES < MULTI_DEVICES:
    raise pytest.UsageError(
        f'{len(need)} selected tests are marked multi_device and need {MULTI_DEVICES} devices '
        f'(SBT_TEST_DEVICES={NUM_DEVICES}), e.g. {need[0]}; '
        "deselect them with -m 'not multi_device' or unset SBT_TEST_DEVICES")


@pytest.fixture(scope='session', autouse=True)
def compilation_cache(tmp_path_factory):
  """A persistent XLA compilation cache per pytest worker, for this process and the
  `python -m sbt_jax...` processes tests start.

  Many tests compile the same programs (the tiny configs' train and eval steps; the
  command-line tests' kill, resume, resume again): each is compiled once per worker and read
  back after that. SBT_JAX_TEST_CACHE=0 turns it off (then only child processes share one).
  """
  if 'JAX_COMPILATION_CACHE_DIR' in os.environ:
    yield os.environ['JAX_COMPILATION_CACHE_DIR']
    return
  path = str(tmp_path_factory.mktemp('jax_compilation_cache'))
  os.environ['JAX_COMPILATION_CACHE_DIR'] = path
  in_process = os.environ.get('SBT_JAX_TEST_CACHE', '1') != '0'
  if in_process:
    jax.config.update('jax_compilation_cache_dir', path)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  try:
    yield path
  finally:
    os.environ.pop('JAX_COMPILATION_CACHE_DIR', None)
    if in_process:
      jax.config.update('jax_compilation_cache_dir', None)


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

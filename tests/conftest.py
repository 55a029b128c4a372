"""8 fake CPU devices for every test (set before any JAX backend starts) + shared fixtures."""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import jax  # pylint: disable=g-import-not-at-top

jax.config.update('jax_num_cpu_devices', 8)

import pytest  # pylint: disable=g-import-not-at-top

from tests import fakes  # pylint: disable=g-import-not-at-top


@pytest.fixture(scope='session')
def fmnist_data_dir(tmp_path_factory):
  """TFDS data_dir holding fashion_mnist_deb built from tiny fake IDX files (40/20 images)."""
  tmp = tmp_path_factory.mktemp('fmnist_session')
  with pytest.MonkeyPatch.context() as mp:
    return fakes.build_fake_tfds(tmp, mp)

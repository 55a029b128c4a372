"""Entry point: `python -m sbt_jax.main --config configs/X.py[:variant] --workdir DIR`.

Parses flags, initialises multi-host JAX when asked, and hands off to the shared loop.
Several processes on one CPU machine (what the multi-process test runs):
  python -m sbt_jax.main --config C --workdir W --distributed --cpu_devices 4 \
      --coordinator_address localhost:PORT --num_processes 2 --process_id {0,1}
Override any field with `--config.a.b=value`; an unknown field or a wrong type is an error.
"""
import logging as logging_std

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from sbt_jax import cli
from sbt_jax import config_defaults
from sbt_jax import distributed
from sbt_jax import paths

config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py[:variant]).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and images.')
flags.DEFINE_bool('distributed', False,
                  'Call jax.distributed.initialize() (multi-host TPU/GPU launches).')
flags.DEFINE_string('coordinator_address', None,
                    'With --distributed: host:port of process 0, for launches where JAX cannot '
                    'detect it (several processes on one machine). Needs the two flags below.')
flags.DEFINE_integer('num_processes', None, 'With --coordinator_address: number of processes.')
flags.DEFINE_integer('process_id', None, 'With --coordinator_address: this process, 0-based.')
flags.DEFINE_integer('cpu_devices', None,
                     'CPU only: fake devices in this process (and gloo collectives across '
                     'processes), e.g. to test multi-process training on one machine.')
flags.mark_flags_as_required(['config', 'workdir'])
FLAGS = flags.FLAGS


class _QuietLibraries(logging_std.Filter):
  """Drops INFO chatter of orbax/grain/absl-internal modules; keeps their warnings."""

  def filter(self, record):
    noisy = ('orbax' in record.pathname or 'grain' in record.pathname
             or 'tensorflow_datasets' in record.pathname)
    return record.levelno >= logging_std.WARNING or not noisy


def _config():
  """FLAGS.config, validated. ml_collections defers a config file's load error to the
  config's first use: report it here, as one line naming the file."""
  config = FLAGS.config
  try:
    config.get('stage')
  except OSError as e:
    path = config_flags.get_config_filename(FLAGS['config'])
    if not paths.isfile(path):
      raise cli.UserError(f'--config={path!r}: no such config file') from e
    reasons = [line.strip() for line in str(e.__cause__ or e).splitlines() if line.strip()]
    renamed = config_defaults.renamed_key_hint(str(e.__cause__ or e))
    raise cli.UserError(f'--config={path!r}: cannot load it ({renamed or reasons[-1]})') from e
  config_defaults.validate(config)
  return config


def main(argv):
  cli.check_no_args(argv)
  # The cheap checks before anything starts or is written: the config, then the workdir.
  config = _config()
  cli.check_output_dir('--workdir', FLAGS.workdir)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  if FLAGS.cpu_devices is not None:
    distributed.configure_cpu(FLAGS.cpu_devices)
  if FLAGS.distributed:
    distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                           num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
  elif FLAGS.coordinator_address is not None:
    raise app.UsageError('--coordinator_address needs --distributed')
  from sbt_jax.trainers import loop  # pylint: disable=g-import-not-at-top
  logging.info('JAX %s: process %d/%d, %d local / %d global devices (%s).', jax.__version__,
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count(), jax.devices()[0].platform)
  loop.train_and_evaluate(config, FLAGS.workdir)


if __name__ == '__main__':
  cli.run(main)

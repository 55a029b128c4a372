"""Sample class-balanced images from a trained generator: a PNG grid and an .npz.

  python -m sbt_jax.sample --workdir workdirs/maskgit_fmnist --num_samples 1000 \
      --out samples/ --seed 0 [--aligner_workdir W] [--guidance_scale 2]

Writes OUT/samples.npz (`images` uint8 [N, H, W, C], `labels` int32 [N], `ids` int32 [N, G])
and OUT/grid.png (one column per class, up to 10 rows). Labels are 0, 1, ..., C-1, 0, 1, ...
so every class gets N / C samples (within one). The same seed and batch size give the same
samples.
"""
from absl import app
from absl import flags
from sbt_jax import cli
from sbt_jax import paths

flags.DEFINE_string('workdir', None, 'Workdir of a trained generator.')
flags.DEFINE_integer('num_samples', None, 'Images to sample (class-balanced).')
flags.DEFINE_string('out', None, 'Output folder.')
flags.DEFINE_integer('seed', 0, 'Sampling seed.')
flags.DEFINE_integer('step', None, 'Generator checkpoint step (default: latest).')
flags.DEFINE_string('aligner_workdir', None, 'Aligner run to decode with (tokenizers with '
                    'an aligner only); the generator is reused as is.')
flags.DEFINE_string('tokenizer_workdir', None, "Tokenizer run (default: the generator's).")
flags.DEFINE_integer('batch_size', None, 'Samples per jitted call (default: the config\'s '
                     'generator.sampling.batch_size).')
flags.DEFINE_float('guidance_scale', None, 'Override generator.sampling.guidance_scale.')
flags.DEFINE_string('guidance_schedule', None, 'Override: constant, linear, power-cosine.')
flags.DEFINE_integer('num_steps', None, 'Override generator.sampling.num_steps (MaskGIT).')
flags.DEFINE_float('temperature', None, 'Override generator.sampling.temperature.')
flags.DEFINE_float('choice_temperature', None,
                   'Override generator.sampling.choice_temperature (MaskGIT).')
flags.mark_flags_as_required(['workdir', 'num_samples', 'out'])
FLAGS = flags.FLAGS


def _check_flags() -> None:
  """The cheap checks, before restoring anything: flag values, the runs' config.json."""
  from sbt_jax import config_defaults  # pylint: disable=g-import-not-at-top
  if FLAGS.num_samples < 1:
    raise app.UsageError('--num_samples must be >= 1')
  positive = {'batch_size': FLAGS.batch_size, 'num_steps': FLAGS.num_steps,
              'temperature': FLAGS.temperature}
  for name, value in positive.items():
    if value is not None and value <= 0:
      raise cli.UserError(f'--{name}={value} must be > 0')
  if FLAGS.choice_temperature is not None and FLAGS.choice_temperature < 0:
    raise cli.UserError(f'--choice_temperature={FLAGS.choice_temperature} must be >= 0')
  if (FLAGS.guidance_schedule is not None
      and FLAGS.guidance_schedule not in config_defaults.GUIDANCE_SCHEDULES):
    raise cli.UserError(f'--guidance_schedule={FLAGS.guidance_schedule!r}; expected one of '
                        f'{config_defaults.GUIDANCE_SCHEDULES}')
  cli.check_output_dir('--out', FLAGS.out)
  cli.run_config('--workdir', FLAGS.workdir, 'generator')
  if FLAGS.tokenizer_workdir:
    cli.run_config('--tokenizer_workdir', FLAGS.tokenizer_workdir, 'tokenizer')
  if FLAGS.aligner_workdir:
    cli.run_config('--aligner_workdir', FLAGS.aligner_workdir, 'aligner')


def main(argv):
  cli.check_no_args(argv)
  _check_flags()
  from sbt_jax.sampling import generate  # pylint: disable=g-import-not-at-top
  from sbt_jax.sampling import restored  # pylint: disable=g-import-not-at-top
  overrides = {'guidance_scale': FLAGS.guidance_scale, 'num_steps': FLAGS.num_steps,
               'guidance_schedule': FLAGS.guidance_schedule,
               'temperature': FLAGS.temperature, 'choice_temperature': FLAGS.choice_temperature,
               'batch_size': FLAGS.batch_size}
  gen = restored.RestoredGenerator(FLAGS.workdir, step=FLAGS.step,
                                   aligner_workdir=FLAGS.aligner_workdir,
                                   tokenizer_workdir=FLAGS.tokenizer_workdir,
                                   sampling_overrides=overrides)
  labels = generate.class_balanced_labels(FLAGS.num_samples, gen.num_classes)
  images, ids = gen.sample(labels, seed=FLAGS.seed)
  written = restored.write_samples(FLAGS.out, images, labels, ids, gen.num_classes)
  paths.write_json(paths.join(FLAGS.out, 'sampling.json'), {
      'generator_workdir': paths.resolve(FLAGS.workdir), 'generator_step': gen.step,
      'tokenizer_workdir': gen.config.generator.tokenizer_workdir,
      'tokenizer_step': gen.tokenizer_step, 'aligner_workdir': FLAGS.aligner_workdir,
      'seed': FLAGS.seed, 'num_samples': FLAGS.num_samples, 'batch_size': gen.batch_size,
      'sampling': gen.config.generator.sampling.to_dict()}, indent=2)
  print(f'Sampled {len(images)} images (generator step {gen.step}, tokenizer step '
        f'{gen.tokenizer_step}) -> {written["grid"]}, {written["npz"]}')


if __name__ == '__main__':
  cli.run(main)

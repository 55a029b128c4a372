"""Flags shared by the encode / decode / reconstruct entry points (one tokenizer to restore)."""
from absl import flags

flags.DEFINE_string('workdir', None, 'Workdir of a trained tokenizer (config.json + checkpoints).')
flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
flags.DEFINE_string('aligner_workdir', None, "SelfBootTok: workdir of a stage='aligner' run "
                    'whose aligner replaces the tokenizer\'s own in generate mode.')
flags.DEFINE_integer('aligner_step', None, 'Checkpoint step of the aligner run (default: latest).')
flags.DEFINE_enum('mode', 'compress', ['compress', 'generate'],
                  "SelfBootTok: 'compress' (G + L ids per image) or 'generate' (G global ids; "
                  'the aligner predicts the local ids when decoding).')
flags.DEFINE_float('temperature', 0.0, 'Generate mode: sample local ids at this temperature '
                   '(0: argmax).')
flags.DEFINE_float('rate', None, 'TaTok: information-loss rate r in [0, 1] (default: the '
                   "run's model.tatok.eval_rate); 0 keeps every patch token.")
flags.DEFINE_integer('seed', 0, 'Generate mode: seed of the local-id sampling.')
FLAGS = flags.FLAGS
# For words left after --images a.png b.png (absl list flags take one argument).
IMAGES_HINT = ' (--images takes one comma-separated list: --images a.png,b.png,dir/)'


def make_tokenizer():
  from sbt_jax import inference  # pylint: disable=g-import-not-at-top
  return inference.Tokenizer(FLAGS.workdir, FLAGS.step, aligner_workdir=FLAGS.aligner_workdir,
                             aligner_step=FLAGS.aligner_step)


def checked_config(encoding: bool = True):
  """The tokenizer run's config (config.json only: cheap), the flags checked against it;
  encoding=False skips the encode-only flags (--mode, --rate)."""
  from sbt_jax import cli  # pylint: disable=g-import-not-at-top
  return cli.tokenizer_config(
      FLAGS.workdir, aligner_workdir=FLAGS.aligner_workdir,
      mode=FLAGS.mode if encoding else 'compress', rate=FLAGS.rate if encoding else None,
      temperature=FLAGS.temperature)

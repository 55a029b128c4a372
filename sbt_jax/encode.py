"""Encode image files to token ids with a trained tokenizer.

  python -m sbt_jax.encode --workdir W --images a.png,dir/ --out ids.npz

Writes ids (int32) and the source file names to the .npz: [B, G] for TiTok; for
SelfBootTok [B, G + L] (--mode=compress) or [B, G] (--mode=generate); for TaTok
[B, G + N] at --rate: global ids, kept patch ids in decreasing-entropy order, -1 padding.
"""
from absl import flags
import numpy as np

from sbt_jax import cli
from sbt_jax import cli_flags
from sbt_jax import paths

flags.DEFINE_list('images', None, 'Image files and/or folders (searched recursively).')
flags.DEFINE_string('out', None, 'Output .npz with `ids` and `files`.')
flags.mark_flags_as_required(['workdir', 'images', 'out'])
FLAGS = flags.FLAGS


def _npz_path(path: str) -> str:
  return path if path.endswith('.npz') else path + '.npz'  # What np.savez(path) writes.


def main(argv):
  cli.check_no_args(argv, cli_flags.IMAGES_HINT)
  from sbt_jax import inference  # pylint: disable=g-import-not-at-top
  out = _npz_path(FLAGS.out)
  cli.check_output_file('--out', out)
  # Cheap checks first: the run's config, then every image, then restore and compile.
  config = cli_flags.checked_config()
  images, files = inference.load_images(FLAGS.images, config.data.image_size,
                                        config.data.channels)
  tok = cli_flags.make_tokenizer()
  ids = tok.encode(images, FLAGS.mode, FLAGS.rate)
  paths.save_npz(out, ids=ids, files=np.array(files))
  print(f'Encoded {len(files)} images to ids {ids.shape} (step {tok.step}) -> {out}')


if __name__ == '__main__':
  cli.run(main)

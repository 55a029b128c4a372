"""Encode image files to token ids with a trained tokenizer.

  python -m sbt_jax.encode --workdir W --images a.png dir/ --out ids.npz

Writes ids [B, G] (int32) and the source file names to the .npz.
"""
import os

from absl import app
from absl import flags
import numpy as np

flags.DEFINE_string('workdir', None, 'Workdir of a trained tokenizer (config.json + checkpoints).')
flags.DEFINE_list('images', None, 'Image files and/or folders (searched recursively).')
flags.DEFINE_string('out', None, 'Output .npz with `ids` and `files`.')
flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
flags.mark_flags_as_required(['workdir', 'images', 'out'])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  from sbt_jax import inference  # pylint: disable=g-import-not-at-top
  tok = inference.Tokenizer(FLAGS.workdir, FLAGS.step)
  images, files = inference.load_images(FLAGS.images, *tok.image_shape[::2])
  ids = tok.encode(images)
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  np.savez(FLAGS.out, ids=ids, files=np.array(files))
  print(f'Encoded {len(files)} images to ids {ids.shape} (step {tok.step}) -> {FLAGS.out}')


if __name__ == '__main__':
  app.run(main)

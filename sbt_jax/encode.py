"""Encode image files to token ids with a trained tokenizer.

  python -m sbt_jax.encode --workdir W --images a.png dir/ --out ids.npz

Writes ids (int32) and the source file names to the .npz: [B, G] for TiTok; for
SelfBootTok [B, G + L] (--mode=compress) or [B, G] (--mode=generate); for TaTok
[B, G + N] at --rate: global ids, kept patch ids in decreasing-entropy order, -1 padding.
"""
import os

from absl import app
from absl import flags
import numpy as np

from sbt_jax import cli_flags

flags.DEFINE_list('images', None, 'Image files and/or folders (searched recursively).')
flags.DEFINE_string('out', None, 'Output .npz with `ids` and `files`.')
flags.mark_flags_as_required(['workdir', 'images', 'out'])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  from sbt_jax import inference  # pylint: disable=g-import-not-at-top
  tok = cli_flags.make_tokenizer()
  images, files = inference.load_images(FLAGS.images, *tok.image_shape[::2])
  ids = tok.encode(images, FLAGS.mode, FLAGS.rate)
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  np.savez(FLAGS.out, ids=ids, files=np.array(files))
  print(f'Encoded {len(files)} images to ids {ids.shape} (step {tok.step}) -> {FLAGS.out}')


if __name__ == '__main__':
  app.run(main)

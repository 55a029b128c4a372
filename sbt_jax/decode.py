"""Decode token ids (an .npz from sbt_jax.encode, or any `ids` [B, G] array) to PNG files.

  python -m sbt_jax.decode --workdir W --ids ids.npz --out_dir decoded/
"""
import zipfile

from absl import app
from absl import flags
import numpy as np

flags.DEFINE_string('workdir', None, 'Workdir of a trained tokenizer.')
flags.DEFINE_string('ids', None, '.npz holding `ids` [B, G] (e.g. written by sbt_jax.encode).')
flags.DEFINE_string('out_dir', None, 'Folder for the decoded PNGs.')
flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
flags.mark_flags_as_required(['workdir', 'ids', 'out_dir'])
FLAGS = flags.FLAGS


def read_ids(path: str) -> np.ndarray:
  try:
    with np.load(path) as data:
      if 'ids' not in data:
        raise ValueError(f'{path} has no `ids` array (found {list(data.keys())})')
      return data['ids']
  except (OSError, zipfile.BadZipFile, EOFError) as e:
    raise ValueError(f'Cannot read ids from {path}: {e}') from e


def main(argv):
  del argv
  from sbt_jax import inference  # pylint: disable=g-import-not-at-top
  from sbt_jax.evaluators import image_grid  # pylint: disable=g-import-not-at-top
  ids = read_ids(FLAGS.ids)
  tok = inference.Tokenizer(FLAGS.workdir, FLAGS.step)
  images = tok.decode(ids)
  paths = image_grid.save_images(images, FLAGS.out_dir, [f'{i:05d}.png' for i in range(len(images))])
  print(f'Decoded {len(paths)} images (step {tok.step}) -> {FLAGS.out_dir}')


if __name__ == '__main__':
  app.run(main)

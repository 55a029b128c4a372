"""Decode token ids (an .npz from sbt_jax.encode, or any `ids` array) to PNG files.

SelfBootTok: [B, G + L] ids decode in compress mode, [B, G] in generate mode (local ids
from the aligner; --temperature > 0 samples them, --aligner_workdir swaps the aligner).

  python -m sbt_jax.decode --workdir W --ids ids.npz --out_dir decoded/
"""
import zipfile

from absl import app
from absl import flags
import numpy as np

from sbt_jax import cli_flags

flags.DEFINE_string('ids', None, '.npz holding `ids` (e.g. written by sbt_jax.encode).')
flags.DEFINE_string('out_dir', None, 'Folder for the decoded PNGs.')
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
  tok = cli_flags.make_tokenizer()
  images = tok.decode(ids, FLAGS.temperature, FLAGS.seed)
  paths = image_grid.save_images(images, FLAGS.out_dir, [f'{i:05d}.png' for i in range(len(images))])
  print(f'Decoded {len(paths)} images (step {tok.step}) -> {FLAGS.out_dir}')


if __name__ == '__main__':
  app.run(main)

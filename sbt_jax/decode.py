"""Decode token ids (an .npz from sbt_jax.encode, or any `ids` array) to PNG files.

SelfBootTok: [B, G + L] ids decode in compress mode, [B, G] in generate mode (local ids
from the aligner; --temperature > 0 samples them, --aligner_workdir swaps the aligner).

  python -m sbt_jax.decode --workdir W --ids ids.npz --out_dir decoded/
"""
import zipfile

from absl import flags
import numpy as np

from sbt_jax import cli
from sbt_jax import cli_flags
from sbt_jax import paths
from sbt_jax.models import registry

flags.DEFINE_string('ids', None, '.npz holding `ids` (e.g. written by sbt_jax.encode).')
flags.DEFINE_string('out_dir', None, 'Folder for the decoded PNGs.')
flags.mark_flags_as_required(['workdir', 'ids', 'out_dir'])
FLAGS = flags.FLAGS


def read_ids(path: str) -> np.ndarray:
  """The `ids` array of an .npz (or the array of an .npy); ValueError names the file."""
  if not paths.isfile(path):
    raise FileNotFoundError(f'--ids={path!r}: no such file')
  errors = (OSError, ValueError, zipfile.BadZipFile, EOFError)
  with paths.open_file(path, 'rb') as f:
    magic = f.read(6)
  if not (magic.startswith(b'PK') or magic == b'\x93NUMPY'):
    raise ValueError(f'Cannot read ids from {path}: not an .npz (or .npy) file')
  try:
    data = paths.load_npy_or_npz(path)
  except errors as e:
    raise ValueError(f'Cannot read ids from {path}: {e}') from e
  if isinstance(data, np.ndarray):
    return data
  with data:
    if 'ids' not in data:
      raise ValueError(f'{path} has no `ids` array (found {list(data.keys())})')
    try:
      return data['ids']
    except errors as e:
      raise ValueError(f'Cannot read ids from {path}: {e}') from e


def check_ids(ids: np.ndarray, config, path: str) -> None:
  """The shape and dtype Tokenizer.decode accepts, checked from the run's config alone."""
  try:
    registry.spec(config).check_ids(config, ids)
  except ValueError as e:
    raise ValueError(f'{path}: {e} (a {config.model.name} tokenizer)') from e
  if not len(ids):
    raise ValueError(f'{path}: no ids to decode (shape {ids.shape})')


def main(argv):
  cli.check_no_args(argv)
  from sbt_jax.evaluators import image_grid  # pylint: disable=g-import-not-at-top
  cli.check_output_dir('--out_dir', FLAGS.out_dir)
  # Cheap checks first (the run's config, the ids), then restore and compile.
  config = cli_flags.checked_config(encoding=False)
  ids = read_ids(FLAGS.ids)
  check_ids(ids, config, FLAGS.ids)
  tok = cli_flags.make_tokenizer()
  images = tok.decode(ids, FLAGS.temperature, FLAGS.seed)
  written = image_grid.save_images(images, FLAGS.out_dir,
                                   [f'{i:05d}.png' for i in range(len(images))])
  print(f'Decoded {len(written)} images (step {tok.step}) -> {FLAGS.out_dir}')


if __name__ == '__main__':
  cli.run(main)

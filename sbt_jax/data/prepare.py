"""Builds a TFDS dataset as ArrayRecord (readable by grain without TensorFlow).

  python -m sbt_jax.data.prepare --dataset fashion_mnist_deb [--data_dir DIR]
  python -m sbt_jax.data.prepare --dataset photo_tiles_deb   # natural RGB (launch/setup.sh --photos)

Idempotent: an already prepared dataset is only located, not rebuilt.
"""
import argparse
import time

import tensorflow_datasets as tfds

from sbt_jax.data import fashion_mnist_deb  # pylint: disable=unused-import  (registers it)
from sbt_jax.data import photo_tiles_deb  # pylint: disable=unused-import  (registers it)


def prepare(dataset: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """Builds `dataset` under `data_dir` (TFDS default if None) unless already there."""
  builder = tfds.builder(dataset, data_dir=data_dir or None, file_format='array_record')
  builder.download_and_prepare(
      file_format='array_record',
      download_config=tfds.download.DownloadConfig(
          compute_stats=tfds.download.ComputeStatsMode.SKIP,  # Stats would need TF.
          try_download_gcs=False),
  )
  return builder


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--dataset', default='fashion_mnist_deb', help='TFDS dataset name.')
  parser.add_argument('--data_dir', default='', help="TFDS data_dir ('' = TFDS default).")
  args = parser.parse_args(argv)
  start = time.perf_counter()
  builder = prepare(args.dataset, args.data_dir)
  sizes = ', '.join(f'{name}={split.num_examples}'
                    for name, split in sorted(builder.info.splits.items()))
  print(f'{builder.info.full_name} ready at {builder.data_dir} '
        f'({builder.info.file_format.value}; {sizes}) in {time.perf_counter() - start:.1f}s')


if __name__ == '__main__':
  main()

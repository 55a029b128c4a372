"""PSNR / SSIM of the trivial reconstructions of a dataset split: per-image mean colour, and
bilinear down/up sampling to a tokenizer's number of bits (evaluators/trivial_baselines.py).

  python -m sbt_jax.tools.trivial_baselines --dataset photo_tiles_deb --split test \
      --image_size 32 --channels 3 --bits 128,64 [--out baselines.json]

--bits is the code length per image of the tokenizers to compare against (TiTok: tokens x
log2(codebook)). Prints one line per baseline; --out also writes them as JSON. Bad input
(unknown dataset, unprepared split, bad --bits) prints one line to stderr, exit status 2.
"""
import argparse
import sys

from sbt_jax import cli
from sbt_jax import config_defaults
from sbt_jax import paths


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--dataset', default='photo_tiles_deb', help='TFDS name or "folder".')
  parser.add_argument('--data_dir', default='', help="TFDS data_dir ('' = TFDS default).")
  parser.add_argument('--folder', default='', help='With --dataset=folder: the images.')
  parser.add_argument('--split', default='test')
  parser.add_argument('--image_size', type=int, default=32)
  parser.add_argument('--channels', type=int, default=3, choices=(1, 3))
  parser.add_argument('--bits', default='128', help='Comma-separated code lengths per image.')
  parser.add_argument('--num_images', type=int, default=-1, help='-1: the whole split.')
  parser.add_argument('--out', default='', help='Also write the results here (JSON).')
  args = parser.parse_args(argv)
  try:
    bits_list = [float(b) for b in args.bits.split(',')]
    if any(b <= 0 for b in bits_list):
      raise ValueError
  except ValueError:
    cli.fail(f'--bits={args.bits!r}: expected comma-separated positive numbers')
  try:
    if args.out:
      cli.check_output_file('--out', args.out)
  except ValueError as e:
    cli.fail(str(e))
  data = config_defaults.base_config().data
  data.name, data.data_dir, data.folder = args.dataset, args.data_dir, args.folder
  data.eval_split, data.image_size, data.channels = args.split, args.image_size, args.channels
  from sbt_jax.data import pipeline  # pylint: disable=g-import-not-at-top  (loads TFDS)
  from sbt_jax.evaluators import trivial_baselines  # pylint: disable=g-import-not-at-top
  try:
    loader = pipeline.make_eval_loader(data, num_images=args.num_images)
    results = trivial_baselines.evaluate(loader, bits_list, args.channels, args.image_size)
  except (ValueError, OSError) as e:
    cli.fail(str(e))
  results['data'] = {'dataset': args.dataset, 'split': args.split,
                     'image_size': args.image_size, 'channels': args.channels}
  for name, row in results.items():
    if isinstance(row, dict) and 'psnr' in row:
      extra = (f" ({row['size']}x{row['size']} at {row['bits_per_value']} bits/value)"
               if 'size' in row else '')
      print(f"{name}: PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.3f}{extra}")
  print(f"on {results['num_images']} images of {args.dataset}/{args.split}")
  if args.out:
    paths.write_json(args.out, results, indent=1)


if __name__ == '__main__':
  main(sys.argv[1:])

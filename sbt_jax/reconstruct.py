"""Encode and decode image files; writes each reconstruction and a side-by-side grid.

  python -m sbt_jax.reconstruct --workdir W --images a.png,dir/ --out_dir recon/
"""
from absl import flags
import numpy as np

from sbt_jax import cli
from sbt_jax import cli_flags
from sbt_jax import paths

flags.DEFINE_list('images', None, 'Image files and/or folders (searched recursively).')
flags.DEFINE_string('out_dir', None, 'Folder for reconstructions, grid.png and metrics.')
flags.mark_flags_as_required(['workdir', 'images', 'out_dir'])
FLAGS = flags.FLAGS


def main(argv):
  cli.check_no_args(argv, cli_flags.IMAGES_HINT)
  from sbt_jax import inference  # pylint: disable=g-import-not-at-top
  from sbt_jax.evaluators import image_grid  # pylint: disable=g-import-not-at-top
  cli.check_output_dir('--out_dir', FLAGS.out_dir)
  # Cheap checks first: the run's config, then every image, then restore and compile.
  config = cli_flags.checked_config()
  images, files = inference.load_images(FLAGS.images, config.data.image_size,
                                        config.data.channels)
  tok = cli_flags.make_tokenizer()
  recon = tok.reconstruct(images, FLAGS.mode, FLAGS.temperature, FLAGS.seed, FLAGS.rate)
  names = [paths.stem(f) + '_recon.png' for f in files]
  image_grid.save_images(recon, FLAGS.out_dir, names)
  image_grid.save_grid(paths.join(FLAGS.out_dir, 'grid.png'), [images[:32], recon[:32]])
  mse = np.mean((np.clip(images, -1, 1) - recon) ** 2, axis=(1, 2, 3)) / 4.0  # in [0,1] units
  psnr = float(np.mean(10 * np.log10(1.0 / np.maximum(mse, 1e-10))))
  print(f'Reconstructed {len(files)} images (step {tok.step}), mean PSNR {psnr:.2f} dB '
        f'-> {FLAGS.out_dir}')


if __name__ == '__main__':
  cli.run(main)

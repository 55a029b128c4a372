"""Convert pytorch-fid's Inception weights (.pth) to the .npz that sbt_jax loads faster.

  python -m sbt_jax.tools.convert_inception pt_inception-2015-12-05-6726825d.pth inception.npz

No torch needed: the file is read by sbt_jax/evaluators/torch_checkpoint.py.
"""
import sys

from sbt_jax.evaluators import inception
from sbt_jax.tools import weights_converter


def main(argv) -> int:
  return weights_converter.main(argv, inception.load_flat_params, 'convert_inception')


if __name__ == '__main__':
  sys.exit(main(sys.argv))

"""Convert torchvision's ConvNeXt-S ImageNet weights (.pth) to the .npz of the ConvNeXt-S
perceptual loss (loss.perceptual='convnext_s' or 'lpips-convnext_s-A-B').

  python -m sbt_jax.tools.convert_convnext convnext_small-0c510722.pth convnext_small.npz

No torch needed: the file is read by sbt_jax/evaluators/torch_checkpoint.py; every
parameter is checked against sbt_jax/evaluators/convnext.py. The .pth itself loads too
(loss.convnext_weights accepts both); the .npz loads faster.
"""
import sys

from sbt_jax.evaluators import convnext
from sbt_jax.tools import weights_converter


def main(argv) -> int:
  return weights_converter.main(argv, convnext.load_flat_params, 'convert_convnext')


if __name__ == '__main__':
  sys.exit(main(sys.argv))

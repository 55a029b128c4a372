"""Convert pytorch-fid's Inception weights (.pth) to the .npz that sbt_jax loads faster.

  python -m sbt_jax.tools.convert_inception pt_inception-2015-12-05-6726825d.pth inception.npz

No torch needed: the file is read by sbt_jax/evaluators/torch_checkpoint.py.
"""
import sys

import numpy as np

from sbt_jax.evaluators import inception


def main(argv) -> int:
  if len(argv) != 3:
    print('usage: python -m sbt_jax.tools.convert_inception IN.pth OUT.npz', file=sys.stderr)
    return 2
  src, dst = argv[1], argv[2]
  try:
    flat = inception.load_flat_params(src)  # Reads, converts and checks every shape.
  except (FileNotFoundError, inception.WeightsError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  np.savez(dst, **flat)
  n = sum(v.size for v in flat.values())
  print(f'Wrote {len(flat)} arrays ({n:,} parameters) to {dst}')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))

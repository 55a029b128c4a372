"""The shared body of the convert_* tools: read a pretrained network's weights (.pth, no
torch needed), check every parameter against the Flax network, write the .npz sbt_jax
loads faster; a bad file is one line on stderr and exit status 1."""
import sys

from sbt_jax import paths
from sbt_jax.evaluators import torch_checkpoint


def main(argv, load_flat_params, tool: str) -> int:
  """`python -m sbt_jax.tools.<tool> IN.pth OUT.npz` with `load_flat_params(path)`."""
  if len(argv) != 3:
    print(f'usage: python -m sbt_jax.tools.{tool} IN.pth OUT.npz', file=sys.stderr)
    return 2
  src, dst = argv[1], argv[2]
  try:
    flat = load_flat_params(src)  # Reads, converts and checks every shape.
  except (FileNotFoundError, torch_checkpoint.WeightsFileError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  paths.save_npz(dst, **flat)
  n = sum(v.size for v in flat.values())
  print(f'Wrote {len(flat)} arrays ({n:,} parameters) to {dst}')
  return 0

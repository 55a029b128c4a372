"""Random weights that the golden scripts and the tests both make from (name, shape) lists:
the reference's outputs are stored, its weights are not (they regenerate bit-exactly from the
seed, numpy only), which keeps tests/golden small."""
import numpy as np


def random_state_dict(shapes: dict, seed: int = 0) -> dict:
  """{name: float32 array} for {name: shape}, drawn in sorted-name order, scaled so that
  every layer's outputs stay O(1): 1-D '.weight's (LayerNorm / GroupNorm scales)
  1 + N(0, 0.1^2); other 1-D arrays (biases) N(0, 0.02^2); VQ codebooks N(0, 1); every other
  array N(0, 1 / fan_in), fan_in = the product of its dimensions after the first."""
  rng = np.random.default_rng(seed)
  out = {}
  for name in sorted(shapes):
    shape = tuple(shapes[name])
    x = rng.standard_normal(shape)
    if len(shape) == 1:
      x = 1.0 + 0.1 * x if name.endswith('.weight') else 0.02 * x
    elif not name.endswith('quantize.embedding.weight'):
      x = x / np.sqrt(np.prod(shape[1:]))
    out[name] = x.astype(np.float32)
  return out

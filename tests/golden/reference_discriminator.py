"""Golden arrays of bytedance/1d-tokenizer's NLayerDiscriminator, for tests/test_adversarial.py.

Not run by the tests or CI: it needs PyTorch (CPU) in its own environment and a checkout of
bytedance/1d-tokenizer, whose modeling/modules/discriminator.py it imports unchanged.

  python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch numpy
  /tmp/torchref/bin/python tests/golden/reference_discriminator.py --repo /path/to/1d-tokenizer

Builds NLayerDiscriminator(num_channels=3, hidden_channels=32, num_stages=2, blur 4 taps)
with torch's default init under torch.manual_seed(0), runs it on two batches of images in
[0, 1] (2 x 32 x 32: the pool repeats its 8 x 8 map; 2 x 40 x 40: overlapping pool windows
of a 10 x 10 map) and writes the state dict ('sd/<name>'), inputs and logits (NHWC) to
tests/golden/discriminator_reference.npz.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top,wrong-import-position


def load_discriminator(repo):
  """modeling.modules.discriminator from the checkout (benchmarks/torch_reference.py
  registers its packages)."""
  torch_reference.register_reference_packages(repo)
  from modeling.modules.discriminator import NLayerDiscriminator  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  return NLayerDiscriminator


def main():
  a = torch_reference.golden_args(__doc__, 'discriminator_reference.npz')
  torch.manual_seed(0)
  model = load_discriminator(a.repo)(num_channels=3, hidden_channels=32, num_stages=2,
                                     blur_resample=True, blur_kernel_size=4).eval()
  arrays = {f'sd/{k}': v.detach().numpy() for k, v in model.state_dict().items()}
  rs = np.random.RandomState(0)
  for size in (32, 40):
    x = rs.uniform(0, 1, (2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
      logits = model(torch.from_numpy(x)).numpy()
    arrays[f'input_{size}'] = x.transpose(0, 2, 3, 1)
    arrays[f'logits_{size}'] = logits.transpose(0, 2, 3, 1)
  np.savez_compressed(a.out, **arrays)
  print(f'wrote {a.out}: ' + ', '.join(f'{k} {v.shape}' for k, v in arrays.items()))


if __name__ == '__main__':
  main()

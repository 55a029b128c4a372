"""Golden arrays of bytedance/1d-tokenizer's ConvNeXt-S perceptual loss, for
tests/test_perceptual.py.

Not run by the tests or CI: it needs PyTorch + torchvision (CPU) in their own environment
and a checkout of bytedance/1d-tokenizer, whose modeling/modules/perceptual_loss.py it
imports unchanged.

  python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch torchvision requests tqdm numpy
  /tmp/torchref/bin/python tests/golden/reference_convnext.py --repo /path/to/1d-tokenizer

The reference builds `torchvision.models.convnext_small(weights=IMAGENET1K_V1)`, which
downloads; here that name in the reference module's `models` namespace returns instead a
small torchvision ConvNeXt (stages of 2 and 1 blocks at 16 and 32 channels, 1,000 classes,
torch.manual_seed(0) init, layer scales and LayerNorm affines redrawn so that every block
counts). The reference's PerceptualLoss('convnext_s') then runs unmodified: antialiased
bilinear resize to 224, ImageNet normalisation, MSE of the logits. Two cases: 2 images of
28 x 28 (upsampled) and 1 of 240 x 240 (downsampled: the antialiasing filter counts), 8-bit
(the network sees value / 255). Writes the state dict ('sd/<name>'), inputs / targets
(uint8 NHWC), the inputs' logits and the losses, and the
parameter names and shapes of the full-size convnext_small (random init, nothing
downloaded) to tests/golden/convnext_reference.npz.
"""
import json
import os
import sys

import numpy as np
import torch
import torchvision
from torchvision.models import convnext as tv_convnext

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top,wrong-import-position


def small_convnext():
  torch.manual_seed(0)
  model = tv_convnext.ConvNeXt(
      [tv_convnext.CNBlockConfig(16, 32, 2), tv_convnext.CNBlockConfig(32, None, 1)],
      stochastic_depth_prob=0.0)  # 1,000 classes
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith('layer_scale'):
        p.uniform_(0.5, 1.5)
    for m in model.modules():
      if isinstance(m, torch.nn.LayerNorm):  # LayerNorm2d too
        m.weight.uniform_(0.7, 1.3)
        m.bias.uniform_(-0.2, 0.2)
  return model.eval()


def main():
  a = torch_reference.golden_args(__doc__, 'convnext_reference.npz')
  torch_reference.register_reference_packages(a.repo)
  import modeling.modules.perceptual_loss as perceptual_loss  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  model = small_convnext()
  perceptual_loss.models.convnext_small = lambda weights=None: model  # no download
  loss_fn = perceptual_loss.PerceptualLoss('convnext_s').eval()
  arrays = {f'sd/{k}': v.detach().numpy() for k, v in model.state_dict().items()}
  rs = np.random.RandomState(0)
  for size, n in ((28, 2), (240, 1)):
    x8 = rs.randint(0, 256, (n, size, size, 3)).astype(np.uint8)  # 8-bit: a small fixture
    y8 = np.clip(x8 + rs.randint(-25, 26, x8.shape), 0, 255).astype(np.uint8)
    x, y = (torch.from_numpy(v.transpose(0, 3, 1, 2) / np.float32(255)) for v in (x8, y8))
    with torch.no_grad():
      loss = loss_fn(x, y).item()
      resized = torch.nn.functional.interpolate(x, size=224, mode='bilinear',
                                                align_corners=False, antialias=True)
      logits = model((resized - loss_fn.imagenet_mean) / loss_fn.imagenet_std).numpy()
    arrays[f'input_{size}'], arrays[f'target_{size}'] = x8, y8
    arrays[f'logits_{size}'] = logits
    arrays[f'loss_{size}'] = np.float32(loss)
  full = tv_convnext.convnext_small()  # random init (the unpatched builder): names, shapes
  arrays['convnext_small_shapes'] = np.array(json.dumps(
      {k: list(v.shape) for k, v in full.state_dict().items()}))
  np.savez_compressed(a.out, **arrays)
  print(f'torch {torch.__version__}, torchvision {torchvision.__version__}; wrote {a.out}: '
        + ', '.join(f'{k} {v.shape}' for k, v in arrays.items() if not k.startswith('sd/')))


if __name__ == '__main__':
  main()

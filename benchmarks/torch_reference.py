"""Speed of the PyTorch reference TiTok-S-128 (bytedance/1d-tokenizer) on this machine, for a
side-by-side comparison with benchmarks/throughput.py.

Not part of sbt_jax and not run by the tests or CI: it needs PyTorch (CPU), einops and
omegaconf in their own environment and a checkout of bytedance/1d-tokenizer, which it imports
unchanged. The model is built from the repo's own config
(configs/training/TiTok/stage1/titok_s128.yaml: 256x256, patch 16, 128 latent tokens, ViT
width 512, depth 8, 8 heads, VQ 4096 x 12), randomly initialised; nothing is downloaded.

  python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch einops omegaconf
  /tmp/torchref/bin/python benchmarks/torch_reference.py --repo /path/to/1d-tokenizer \
      --dtype {float32,bfloat16} --bench {train,encode_decode}

What is timed (batch 8 of random images, torch.set_num_threads(--threads)):
- train: forward (encode, quantize, decode), loss = MSE(reconstruction, image) + quantizer
  loss, backward, AdamW step; like throughput.py's `train` (no perceptual loss, no GAN).
  The decoder is the repo's pixel head (`is_legacy=False`); its stage-1 recipe for S-128
  instead trains a 1024-way proxy-code head with cross-entropy, which costs about the same.
  The repo's trainer also clips gradients to norm 1 and keeps an EMA of the weights (as
  sbt_jax's train step does); --clip_grad_norm 1 --ema add those.
- encode_decode: encode + decode to pixels under torch.inference_mode().
- bfloat16: torch.autocast('cpu', dtype=torch.bfloat16) around forward and loss (float32
  weights; backward and optimizer outside autocast).
Results are appended to --results (benchmarks/results.jsonl) as `reference/...` records.
"""
import argparse
import datetime
import os
import shlex
import statistics
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import records  # pylint: disable=g-import-not-at-top,wrong-import-position


def register_reference_packages(repo):
  """Makes the checkout's `modeling` and `modeling.modules` importable without their
  package __init__ files, which import the training losses (torchvision, ...) that the
  models need none of: both are registered as bare namespace modules."""
  sys.path.insert(0, repo)
  for name, sub in (('modeling', 'modeling'), ('modeling.modules', 'modeling/modules')):
    if name not in sys.modules:
      module = types.ModuleType(name)
      module.__path__ = [os.path.join(repo, sub)]
      sys.modules[name] = module


def golden_args(doc: str, out_name: str):
  """--repo (the checkout) and --out (default tests/golden/<out_name>) of a golden script."""
  ap = argparse.ArgumentParser(description=doc.split('\n')[0])
  ap.add_argument('--repo', required=True, help='checkout of bytedance/1d-tokenizer')
  ap.add_argument('--out', default=os.path.join(
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tests', 'golden', out_name))
  return ap.parse_args()


def load_titok(repo):
  """modeling.titok.TiTok from the checkout."""
  register_reference_packages(repo)
  from modeling.titok import TiTok  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  return TiTok


def main():
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--repo', required=True, help='checkout of bytedance/1d-tokenizer')
  ap.add_argument('--dtype', choices=['float32', 'bfloat16'], default='float32')
  ap.add_argument('--bench', choices=['train', 'encode_decode'], default='train')
  ap.add_argument('--batch', type=int, default=8)
  ap.add_argument('--steps', type=int, default=10)
  ap.add_argument('--warmup', type=int, default=2)
  ap.add_argument('--threads', type=int, default=2)
  ap.add_argument('--clip_grad_norm', type=float, default=0.0, help='0: no clipping')
  ap.add_argument('--ema', action='store_true', help='EMA of the weights after each step')
  ap.add_argument('--results', default=os.path.join(os.path.dirname(__file__), 'results.jsonl'))
  args = ap.parse_args()
  cfg_path = os.path.join(args.repo, 'configs/training/TiTok/stage1/titok_s128.yaml')
  if not os.path.isfile(cfg_path):
    sys.exit(f'--repo {args.repo!r}: no {cfg_path} (expected a bytedance/1d-tokenizer checkout)')

  import torch  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  from omegaconf import OmegaConf  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  cfg = OmegaConf.load(cfg_path)
  cfg.model.vq_model.is_legacy = False  # pixel decoder head (see the module docstring)
  cfg.model.vq_model.finetune_decoder = False
  model = load_titok(args.repo)(cfg)
  size = cfg.dataset.preprocessing.crop_size
  x = torch.rand(args.batch, 3, size, size, generator=torch.Generator().manual_seed(0))
  autocast = lambda: torch.autocast('cpu', dtype=torch.bfloat16,  # pylint: disable=g-long-lambda
                                    enabled=args.dtype == 'bfloat16')

  if args.bench == 'train':
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.99), weight_decay=1e-4)
    ema = [p.detach().clone() for p in params] if args.ema else None

    def step():
      opt.zero_grad(set_to_none=True)
      with autocast():
        recon, out = model(x)
        loss = F.mse_loss(recon.float(), x) + out['quantizer_loss']
      loss.backward()
      if args.clip_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, args.clip_grad_norm)
      opt.step()
      if ema is not None:
        with torch.no_grad():
          torch._foreach_lerp_(ema, params, 1e-3)  # pylint: disable=protected-access
      return loss.item()
  else:
    model.eval()

    def step():
      with torch.inference_mode(), autocast():
        z, _ = model.encode(x)
        return float(model.decode(z).float().sum())

  times = []
  for i in range(args.warmup + args.steps):
    t0 = time.perf_counter()
    step()
    if i >= args.warmup:
      times.append(time.perf_counter() - t0)
  med = statistics.median(times)
  print(f'reference/s128/{args.bench}/{args.dtype}: {args.batch / med:.2f} img/s '
        f'(median {med:.3f} s of {[round(t, 2) for t in times]})')

  extras = '' if args.bench != 'train' else (
      f' clip{args.clip_grad_norm:g}' + (' ema' if args.ema else ''))
  record = {
      'name': f'reference/s128/{args.bench}/{args.dtype}', 'metric': 'images_per_s',
      'value': args.batch / med, 'unit': 'images/s', 'config': 's128',
      'implementation': f'PyTorch bytedance/1d-tokenizer TiTok (torch {torch.__version__})'
                        + extras,
      'device': f'cpu ({records.cpu_description()})', 'git': records.git_revision(),
      'threads': args.threads, 'batch': args.batch, 'dtype': args.dtype,
      'steps': args.steps, 'warmup': args.warmup, 'step_times_s': times,
      'loadavg_1m': os.getloadavg()[0],
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'command': ' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv),
  }
  records.append_records(args.results, [record])


if __name__ == '__main__':
  main()

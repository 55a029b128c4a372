"""TiTok on ImageNet-256 at the paper's sizes: S-128, B-64, L-32 (arXiv 2406.07550).

  python -m sbt_jax.main --config configs/titok_imagenet256.py:s128 --workdir gs://BUCKET/titok_s128

Needs `imagenet2012` prepared by TFDS in the array_record format under data.data_dir
(`tfds build imagenet2012 --file_format=array_record --manual_dir=...`).
Variants: `s128` | `b64` | `l32` (pick one), optionally `,crt` (CRT: a 2-layer width-512
causal predictor of the next pre-quantization token with its own AdamW, lambda = 4 ramped
over the first 1k steps) and `,runlocal` (tiny, for smoke tests).
Paper-scale defaults; not yet trained by us, so no measured metrics yet.
"""
from sbt_jax import config_defaults

# variant: (encoder/decoder size, latent tokens)
SIZES = {'s128': ('small', 128), 'b64': ('base', 64), 'l32': ('large', 32)}


def set_crt(c):
  """CRT at the spec's defaults (lambda 4, 1k-step ramp, depth 2) with an S-width predictor."""
  c.crt.enabled = True
  c.crt.weight = 4.0
  c.crt.ramp_steps = 1000
  p = c.crt.predictor
  p.width, p.depth, p.num_heads = 512, 2, 8
  c.crt.optim.learning_rate = 1e-4
  c.crt.optim.warmup_steps = 100


def get_config(arg: str | None = None):
  args = set(arg.split(',')) if arg else {'s128'}
  sizes = args & set(SIZES)
  unknown = args - set(SIZES) - {'runlocal', 'crt'}
  if unknown or len(sizes) != 1:
    raise ValueError(f'titok_imagenet256 variants {sorted(args)}: pick exactly one of '
                     f'{sorted(SIZES)} and optionally crt, runlocal')
  size, tokens = SIZES[sizes.pop()]
  width, depth, heads = config_defaults.MODEL_SIZES[size]
  c = config_defaults.base_config()
  c.data.name = 'imagenet2012'
  c.data.train_split = 'train'
  c.data.eval_split = 'validation'
  c.data.image_size = 256
  c.data.channels = 3
  c.data.global_batch_size = 256
  c.data.eval_batch_size = 256
  c.data.read_threads = 16
  # JPEG decoding and resizing need worker processes at this scale (main runs under absl).
  c.data.worker_count = 8
  c.model.patch_size = 16
  c.model.num_latent_tokens = tokens
  c.model.codebook_size = 4096
  c.model.token_dim = 12
  for part in (c.model.encoder, c.model.decoder):
    part.width, part.depth, part.num_heads = width, depth, heads
  c.model.compute_dtype = 'bfloat16'
  c.loss.lpips_weight = 0.1
  c.optim.learning_rate = 1e-4
  c.optim.warmup_steps = 10_000
  c.optim.weight_decay = 1e-4
  c.optim.b2 = 0.99
  c.optim.ema_decay = 0.999
  c.train.num_steps = 1_000_000
  c.train.log_every = 100
  c.train.eval_every = 10_000
  c.train.eval_num_images = 10_000
  c.train.checkpoint_every = 5_000
  c.train.keep_checkpoints = 3
  if 'crt' in args:
    set_crt(c)
  if 'runlocal' in args:
    for part in (c.model.encoder, c.model.decoder):
      part.width, part.depth, part.num_heads = 64, 1, 2
    c.crt.predictor.width, c.crt.predictor.num_heads = 64, 2
    c.data.global_batch_size = 8
    c.data.eval_batch_size = 8
    c.data.worker_count = 0
    c.train.num_steps = 2
    c.train.eval_every = -1
    c.train.checkpoint_every = 2
  return c

"""Class-conditional MaskGIT or AR over an ImageNet-256 tokenizer's global ids, paper scale.

  python -m sbt_jax.main --config configs/generator_imagenet256.py:maskgit \
      --config.generator.tokenizer_workdir=gs://BUCKET/titok_s128 --workdir gs://BUCKET/gen

Variants: `maskgit` | `ar` (pick one; default maskgit), optionally `,large` (24 blocks of
width 1024 instead of 16 x 768), `,runlocal` (tiny, for smoke tests). Sizes follow TiTok's
MaskGIT generator (16 layers, width 768, 12 heads; 8 decoding steps, arccos schedule,
label drop 0.1, label smoothing 0.1, power-cosine guidance) and LlamaGen-B-like AR.
The ids of ImageNet's train split are cached once under <workdir>/token_cache (int32
[1.28M, G]: 330 MB for G = 64). Not yet trained by us: no measured metrics yet.
"""
from sbt_jax import config_defaults


def get_config(arg: str | None = None):
  args = set(arg.split(',')) if arg else {'maskgit'}
  kinds = args & {'maskgit', 'ar'}
  unknown = args - {'maskgit', 'ar', 'large', 'runlocal'}
  if unknown or len(kinds) > 1:
    raise ValueError(f'generator_imagenet256 variants {sorted(args)}: at most one of '
                     "'maskgit', 'ar', optionally 'large' and 'runlocal'")
  c = config_defaults.base_config()
  c.stage = 'generator'
  c.data.name = 'imagenet2012'
  c.data.train_split = 'train'
  c.data.eval_split = 'validation'
  c.data.image_size = 256
  c.data.channels = 3
  c.data.global_batch_size = 2048
  c.data.eval_batch_size = 512
  c.data.read_threads = 16
  c.data.worker_count = 8
  g = c.generator
  g.type = 'ar' if 'ar' in kinds else 'maskgit'
  t = g.transformer
  t.width, t.depth, t.num_heads = (config_defaults.MODEL_SIZES['large'] if 'large' in args
                                   else (768, 16, 12))
  g.num_classes = 1000
  g.label_drop = 0.1
  g.label_smoothing = 0.1
  g.mask_schedule = 'arccos'
  g.use_token_cache = True
  g.compute_dtype = 'bfloat16'
  s = g.sampling
  s.num_steps = 8
  s.temperature = 1.0
  s.choice_temperature = 4.5 if g.type == 'maskgit' else 0.0
  s.guidance_scale = 4.5 if g.type == 'maskgit' else 2.0
  s.guidance_schedule = 'power-cosine' if g.type == 'maskgit' else 'linear'
  s.guidance_power = 2.75  # guidance values are starting points, to be tuned by FD sweeps
  s.batch_size = 250
  c.optim.learning_rate = 2e-4
  c.optim.warmup_steps = 10_000
  c.optim.b1, c.optim.b2 = 0.9, 0.96
  c.optim.weight_decay = 0.03
  c.optim.grad_clip_norm = 1.0
  c.optim.ema_decay = 0.9999
  c.train.num_steps = 500_000
  c.train.log_every = 100
  c.train.eval_every = 10_000
  c.train.eval_num_images = 10_000
  c.train.checkpoint_every = 5_000
  c.train.keep_checkpoints = 3
  c.train.grid_num_images = 32
  if 'runlocal' in args:
    g.transformer.width, g.transformer.depth, g.transformer.num_heads = 64, 1, 2
    g.compute_dtype = 'float32'
    c.data.global_batch_size = 8
    c.data.eval_batch_size = 8
    c.data.worker_count = 0
    c.train.num_steps = 2
    c.train.eval_every = -1
    c.train.checkpoint_every = 2
  return c

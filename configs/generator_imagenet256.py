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
from configs import common
from sbt_jax import config_defaults

VARIANTS = ('maskgit', 'ar', 'large', 'runlocal')


def get_config(arg: str | None = None):
  variants = common.parse_variants(arg, VARIANTS, 'generator_imagenet256')
  kind = common.pick_one(variants, ('maskgit', 'ar'), 'generator_imagenet256',
                         required=False) or 'maskgit'
  c = config_defaults.base_config()
  common.imagenet256_data(c, batch_size=2048, eval_batch_size=512)
  common.generator_stage(c, kind, num_classes=1000)
  g = c.generator
  size = dict(width=768, depth=16, num_heads=12)  # TiTok's MaskGIT generator
  if 'large' in variants:
    size = common.vit_size('large')
  common.set_vit(g.transformer, **size)
  g.mask_schedule = 'arccos'  # MaskGIT's masking ratio schedule
  g.compute_dtype = 'bfloat16'  # matmul operands; params stay float32
  _sampling(g.sampling, kind)
  c.optim.learning_rate = 2e-4  # peak, after 10k warmup steps
  c.optim.b1, c.optim.b2 = 0.9, 0.96  # AdamW betas
  c.optim.weight_decay = 0.03
  c.optim.grad_clip_norm = 1.0
  c.optim.ema_decay = 0.9999  # EMA of the params (eval uses it)
  common.imagenet256_schedule(c, num_steps=500_000)
  if 'runlocal' in variants:
    common.runlocal_imagenet256(c, [g.transformer])
    g.compute_dtype = 'float32'
  return c


def _sampling(s, kind):
  """Starting points for MaskGIT and AR, to be tuned by FD sweeps."""
  maskgit = kind == 'maskgit'
  s.temperature = 1.0
  s.choice_temperature = 4.5 if maskgit else 0.0
  s.guidance_scale = 4.5 if maskgit else 2.0
  s.guidance_schedule = 'power-cosine' if maskgit else 'linear'
  s.guidance_power = 2.75
  s.batch_size = 250  # samples per jitted sampling call

"""TiTok on ImageNet-256 at the paper's sizes: S-128, B-64, L-32 (arXiv 2406.07550).

  python -m sbt_jax.main --config configs/titok_imagenet256.py:s128 --workdir gs://BUCKET/titok_s128

Needs `imagenet2012` prepared by TFDS in the array_record format under data.data_dir
(`tfds build imagenet2012 --file_format=array_record --manual_dir=...`).
Variants: `s128` | `b64` | `l32` | `bl64` (pick one), optionally `,crt` (CRT: a 2-layer
width-512 causal predictor of the next pre-quantization token with its own AdamW, lambda = 4
ramped over the first 1k steps), `,finetune` (the reference's stage 2, e.g. `b64,finetune`:
the decoder of a finished run fine-tuned with ConvNeXt-S and a discriminator,
common.decoder_finetune_recipe; needs --config.train.init_from=<that run> and
--config.loss.convnext_weights=...) and `,runlocal` (tiny, for smoke tests).
`bl64` is the single-stage TiTok-BL-64 VQ (B encoder, L decoder, 64 tokens from 8,192 codes
of dimension 64) trained with the reference's single-stage recipe (common.single_stage_recipe:
L2 + LPIPS + ConvNeXt-S + discriminator from 200k steps, 650k steps of 1,024 images):

  python -m sbt_jax.main --config configs/titok_imagenet256.py:bl64 --workdir gs://BUCKET/bl64 \
      --config.loss.convnext_weights=/path/convnext_small-0c510722.pth

`bl64` uses the reference's own network layout (model.layout='reference': class token,
ln_pre, LayerNorm eps 1e-5, exact GELU, conv pixel head; Euclidean VQ), so its checkpoints
have the parameters of the released TiTok-BL-64 VQ: train.init_from a converted release
(docs/official_weights.md) fine-tunes it. Paper-scale defaults; not yet trained by us, so
no measured metrics yet.
"""
from configs import common
from sbt_jax import config_defaults

# variant: (encoder/decoder size, latent tokens)
SIZES = {'s128': ('small', 128), 'b64': ('base', 64), 'l32': ('large', 32),
         'bl64': ('base', 64)}
VARIANTS = (*SIZES, 'crt', 'finetune', 'runlocal')


def set_crt(c):
  """CRT at the spec's defaults (lambda 4, 1k-step ramp, depth 2) with an S-width predictor."""
  c.crt.enabled = True
  c.crt.weight = 4.0
  c.crt.ramp_steps = 1000
  common.set_vit(c.crt.predictor, width=512, depth=2, num_heads=8)
  c.crt.optim.learning_rate = 1e-4
  c.crt.optim.warmup_steps = 100


def get_config(arg: str | None = None):
  variants = common.parse_variants(arg, VARIANTS, 'titok_imagenet256', default=('s128',))
  size, tokens = SIZES[common.pick_one(variants, SIZES, 'titok_imagenet256')]
  c = config_defaults.base_config()
  common.imagenet256_data(c, batch_size=256, eval_batch_size=256)
  c.model.patch_size = 16  # 16 x 16 = 256 patches
  c.model.num_global_tokens = tokens  # K
  c.model.codebook_size = 4096
  c.model.token_dim = 12  # dimension of a quantized token
  common.set_vit(c.model.encoder, c.model.decoder, **common.vit_size(size))
  c.model.compute_dtype = 'bfloat16'  # matmul operands; params stay float32
  c.loss.perceptual_weight = 0.1  # LPIPS (VGG16) next to L1 + L2 + VQ
  c.optim.learning_rate = 1e-4  # peak, after 10k warmup steps
  c.optim.weight_decay = 1e-4
  c.optim.b2 = 0.99  # AdamW beta2
  c.optim.ema_decay = 0.999  # EMA of the params (eval uses it)
  common.imagenet256_schedule(c, num_steps=1_000_000)
  if 'bl64' in variants:
    common.set_vit(c.model.decoder, **common.vit_size('large'))  # the L of BL
    c.model.codebook_size = 8192  # VQ 8k
    c.model.token_dim = 64
    c.model.layout = 'reference'  # the released BL-64's network (models/titok_reference.py)
    c.model.vq_l2_norm = False  # its use_l2_norm: False (Euclidean nearest code)
    common.single_stage_recipe(c)
  if 'crt' in variants:
    set_crt(c)
  if 'finetune' in variants:
    common.decoder_finetune_recipe(c)
  if 'runlocal' in variants:
    common.runlocal_imagenet256(c, [c.model.encoder, c.model.decoder], crt=True)
    if c.adversarial.enabled:
      common.recipe_runlocal(c)
  return c

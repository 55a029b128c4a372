"""SelfBootTok on ImageNet-256: G = 64 global tokens (the paper's generator sequence),
L = 64 local tokens, B-size encoder/decoder, S-size tokenizer-stage aligner.

The recipe that measured best on Fashion-MNIST (docs/selfboottok_vs_titok.md, 3 seeds) is two
runs: this config, then `finetune`, its decoder and aligner fine-tuned against a
discriminator (the reference's TiTok stage 2, common.decoder_finetune_recipe); the encoder and
quantizers stay frozen, so a generator trained on the first run's ids serves both:
  python -m sbt_jax.main --config configs/selfboottok_imagenet256.py --workdir gs://BUCKET/sbt_b64
  python -m sbt_jax.main --config configs/selfboottok_imagenet256.py:finetune \
      --config.train.init_from=gs://BUCKET/sbt_b64 --workdir gs://BUCKET/sbt_b64_ft \
      --config.loss.convnext_weights=/path/convnext_small-0c510722.pth
  # a larger 2D aligner against the frozen tokenizer (any size; runs beside the generator):
  python -m sbt_jax.main --config configs/selfboottok_imagenet256.py:aligner_l \
      --config.aligner.tokenizer_workdir=gs://BUCKET/sbt_b64 --workdir gs://BUCKET/sbt_b64_al_l

Needs `imagenet2012` prepared by TFDS in the array_record format (see titok_imagenet256.py).
Variants: `aligner_b` | `aligner_l` (stage='aligner' with a B or L aligner), `soft`
(SoftVQ-style global quantizer), `crt` (CRT on the 64 global tokens, as in
titok_imagenet256.py:crt), `single_stage` (the reference's single-stage losses and schedule,
as titok_imagenet256.py:bl64: L2 + LPIPS + ConvNeXt-S + discriminator from 200k steps;
needs --config.loss.convnext_weights=...), `finetune` (above), `runlocal` (tiny, for smoke
tests). Our choices where the paper's are unknown (see docs/design.md); not yet trained by
us at this scale: no measured metrics.
"""
from configs import common
from configs import titok_imagenet256

VARIANTS = ('aligner_b', 'aligner_l', 'soft', 'crt', 'single_stage', 'finetune', 'runlocal')
# aligner variant: the size of the aligner trained in the aligner stage
ALIGNER_SIZES = {'aligner_b': 'base', 'aligner_l': 'large'}


def get_config(arg: str | None = None):
  variants = common.parse_variants(arg, VARIANTS, 'selfboottok_imagenet256')
  c = titok_imagenet256.get_config('b64')  # data, optimizer, schedule, B encoder/decoder
  c.model.name = 'selfboottok'
  c.model.num_global_tokens = 64  # G
  c.model.num_local_tokens = 64  # L
  c.model.local_codebook_size = 4096  # the local tokens' own codebook
  c.model.local_token_dim = 12
  c.model.prototype_hidden = 256  # bottleneck of the slot-prototype MLP
  common.set_vit(c.model.aligner, **common.vit_size('small'))
  if 'soft' in variants:
    c.model.global_quantizer = 'soft'
  if 'crt' in variants:
    titok_imagenet256.set_crt(c)
  if 'single_stage' in variants:
    common.single_stage_recipe(c)
  if 'finetune' in variants:
    common.decoder_finetune_recipe(c)
  for variant, size in ALIGNER_SIZES.items():
    if variant in variants:
      c.stage = 'aligner'
      common.set_vit(c.aligner.model, **common.vit_size(size))
      c.train.num_steps = 200_000
      c.aligner.phase1_steps = 50_000  # phase 1: 2D alignment loss only
  if 'runlocal' in variants:
    vits = [c.model.encoder, c.model.decoder, c.model.aligner, c.aligner.model]
    common.runlocal_imagenet256(c, vits, tokens=8, codebook=64, crt=True)
    c.model.num_local_tokens = 8
    c.model.local_codebook_size = 64
    c.aligner.phase1_steps = 1
    if c.adversarial.enabled:
      common.recipe_runlocal(c)
  return c

"""TaTok on ImageNet-256: G = 32 global tokens + up to 256 patch tokens (16 x 16 patches)
kept by Dynamic Token Filtering; B-size encoder/decoder, S-size patch aligner.

  python -m sbt_jax.main --config configs/tatok_imagenet256.py --workdir gs://BUCKET/tatok_b

Needs `imagenet2012` prepared by TFDS in the array_record format (see titok_imagenet256.py).
Variants: `runlocal` (tiny, for smoke tests). Our choices where the paper's are unknown (see
docs/design.md); not yet trained by us: no measured metrics.
"""
from configs import common
from configs import titok_imagenet256

VARIANTS = ('runlocal',)


def get_config(arg: str | None = None):
  variants = common.parse_variants(arg, VARIANTS, 'tatok_imagenet256')
  c = titok_imagenet256.get_config('b64')  # data, optimizer, schedule, B encoder/decoder
  c.model.name = 'tatok'
  c.model.num_global_tokens = 32  # G
  c.model.tatok.patch_codebook_size = 4096
  c.model.tatok.patch_token_dim = 12
  common.set_vit(c.model.tatok.aligner, **common.vit_size('small'))
  if 'runlocal' in variants:
    vits = [c.model.encoder, c.model.decoder, c.model.tatok.aligner]
    common.runlocal_imagenet256(c, vits, tokens=8, codebook=64)
    c.model.tatok.patch_codebook_size = 64
  return c

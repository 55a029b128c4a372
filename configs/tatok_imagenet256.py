"""TaTok on ImageNet-256: G = 32 global tokens + up to 256 patch tokens (16 x 16 patches)
kept by Dynamic Token Filtering; B-size encoder/decoder, S-size patch aligner.

  python -m sbt_jax.main --config configs/tatok_imagenet256.py --workdir gs://BUCKET/tatok_b

Needs `imagenet2012` prepared by TFDS in the array_record format (see titok_imagenet256.py).
Variants: `runlocal` (tiny, for smoke tests). Our choices where the paper's are unknown (see
docs/design.md); not yet trained by us: no measured metrics.
"""
from configs import titok_imagenet256
from sbt_jax import config_defaults

VARIANTS = {'runlocal'}


def get_config(arg: str | None = None):
  args = set(arg.split(',')) if arg else set()
  unknown = args - VARIANTS
  if unknown:
    raise ValueError(f'Unknown variants {sorted(unknown)} for tatok_imagenet256; '
                     f'known: {sorted(VARIANTS)}')
  c = titok_imagenet256.get_config('b64')  # data, optimizer, schedule, B encoder/decoder
  c.model.name = 'tatok'
  c.model.num_latent_tokens = 32
  c.model.tatok.patch_codebook_size = 4096
  c.model.tatok.patch_token_dim = 12
  width, depth, heads = config_defaults.MODEL_SIZES['small']
  a = c.model.tatok.aligner
  a.width, a.depth, a.num_heads = width, depth, heads
  if 'runlocal' in args:
    for part in (c.model.encoder, c.model.decoder, c.model.tatok.aligner):
      part.width, part.depth, part.num_heads = 64, 1, 2
    c.model.num_latent_tokens = 8
    c.model.codebook_size = 64
    c.model.tatok.patch_codebook_size = 64
    c.data.global_batch_size = 8
    c.data.eval_batch_size = 8
    c.data.worker_count = 0
    c.train.num_steps = 2
    c.train.eval_every = -1
    c.train.checkpoint_every = 2
  return c

"""SelfBootTok on ImageNet-256: G = 64 global tokens (the paper's generator sequence),
L = 64 local tokens, B-size encoder/decoder, S-size tokenizer-stage aligner.

  python -m sbt_jax.main --config configs/selfboottok_imagenet256.py --workdir gs://BUCKET/sbt_b64
  # a larger 2D aligner against the frozen tokenizer (any size; runs beside the generator):
  python -m sbt_jax.main --config configs/selfboottok_imagenet256.py:aligner_l \
      --config.aligner.tokenizer_workdir=gs://BUCKET/sbt_b64 --workdir gs://BUCKET/sbt_b64_al_l

Needs `imagenet2012` prepared by TFDS in the array_record format (see titok_imagenet256.py).
Variants: `aligner_b` | `aligner_l` (stage='aligner' with a B or L aligner), `soft`
(SoftVQ-style global quantizer), `crt` (CRT on the 64 global tokens, as in
titok_imagenet256.py:crt), `runlocal` (tiny, for smoke tests). Our choices where the
paper's are unknown (see docs/design.md); not yet trained by us: no measured metrics.
"""
from configs import titok_imagenet256
from sbt_jax import config_defaults

VARIANTS = {'aligner_b', 'aligner_l', 'soft', 'crt', 'runlocal'}


def get_config(arg: str | None = None):
  args = set(arg.split(',')) if arg else set()
  unknown = args - VARIANTS
  if unknown:
    raise ValueError(f'Unknown variants {sorted(unknown)} for selfboottok_imagenet256; '
                     f'known: {sorted(VARIANTS)}')
  c = titok_imagenet256.get_config('b64')  # data, optimizer, schedule, B encoder/decoder
  c.model.name = 'selfboottok'
  c.model.num_latent_tokens = 64
  c.model.num_local_tokens = 64
  c.model.local_codebook_size = 4096
  c.model.local_token_dim = 12
  c.model.prototype_hidden = 256
  width, depth, heads = config_defaults.MODEL_SIZES['small']
  c.model.aligner.width, c.model.aligner.depth, c.model.aligner.num_heads = width, depth, heads
  if 'soft' in args:
    c.model.global_quantizer = 'soft'
  if 'crt' in args:
    titok_imagenet256.set_crt(c)
  for size in ('b', 'l'):
    if f'aligner_{size}' in args:
      c.stage = 'aligner'
      width, depth, heads = config_defaults.MODEL_SIZES['base' if size == 'b' else 'large']
      c.aligner.model.width, c.aligner.model.depth, c.aligner.model.num_heads = (
          width, depth, heads)
      c.train.num_steps = 200_000
      c.aligner.phase1_steps = 50_000
  if 'runlocal' in args:
    for part in (c.model.encoder, c.model.decoder, c.model.aligner, c.aligner.model):
      part.width, part.depth, part.num_heads = 64, 1, 2
    c.model.num_latent_tokens = 8
    c.model.num_local_tokens = 8
    c.model.codebook_size = 64
    c.model.local_codebook_size = 64
    c.crt.predictor.width, c.crt.predictor.num_heads = 64, 2
    c.data.global_batch_size = 8
    c.data.eval_batch_size = 8
    c.data.worker_count = 0
    c.train.num_steps = 2
    c.aligner.phase1_steps = 1
    c.train.eval_every = -1
    c.train.checkpoint_every = 2
  return c

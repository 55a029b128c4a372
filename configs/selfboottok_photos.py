"""SelfBootTok on natural RGB photographs (photo_tiles_deb: 32x32 tiles, held-out
photographs), sized to train on a 2-core CPU in minutes (issue 21; docs/natural_rgb.md).

  bash launch/setup.sh --photos     # once
  python -m sbt_jax.main --config configs/selfboottok_photos.py --workdir workdirs/sbt_photos

G = 16 global FSQ tokens + the mean colour as 3 exact 8-bit ids (the generate-mode ids:
152 bits), plus L = 8 local FSQ tokens in compress mode (216 bits); all codebooks
256 = 4 ** 4; encoder/decoder/aligner of width 64 and depth 2; 1,500 steps; eval of both
modes on all 3,044 test tiles. Variants: `runlocal` (tiny models, a few steps: tests).
Results (3 seeds, curves, grids): docs/natural_rgb.md.
"""
from configs import common
from sbt_jax import config_defaults

VARIANTS = ('runlocal',)


def get_config(arg: str | None = None):
  variants = common.parse_variants(arg, VARIANTS, 'selfboottok_photos')
  c = config_defaults.base_config()
  common.photos_tokenizer(c, num_steps=1500)
  c.model.name = 'selfboottok'
  c.model.num_local_tokens = 8  # L
  c.model.local_codebook_size = 256  # 4 ** 4 (FSQ)
  c.model.local_token_dim = 4
  common.set_vit(c.model.aligner, width=64, depth=2, num_heads=2)
  if 'runlocal' in variants:
    common.runlocal_photos(c, [c.model.encoder, c.model.decoder, c.model.aligner])
    c.model.num_local_tokens = 4
    c.model.local_codebook_size, c.model.local_token_dim = 64, 3
    c.model.ot.max_iterations = 100
  return c

"""TaTok on natural RGB photographs (photo_tiles_deb: 32x32 tiles, held-out photographs),
sized to train on a 2-core CPU in minutes (issue 21; docs/natural_rgb.md).

  bash launch/setup.sh --photos     # once
  python -m sbt_jax.main --config configs/tatok_photos.py --workdir workdirs/tatok_photos

G = 16 global FSQ tokens + the mean colour as 3 exact 8-bit ids, plus up to N = 64 patch
FSQ tokens kept by Dynamic Token Filtering (eval at r = 0.3); all codebooks 256 = 4 ** 4;
encoder/decoder/aligner of width 64 and depth 2; 1,500 steps; eval on all 3,044 test tiles.
Variants: `runlocal` (tiny models, a few steps: tests).
Results (3 seeds, curves, grids): docs/natural_rgb.md.
"""
from configs import common
from sbt_jax import config_defaults

VARIANTS = ('runlocal',)


def get_config(arg: str | None = None):
  variants = common.parse_variants(arg, VARIANTS, 'tatok_photos')
  c = config_defaults.base_config()
  common.photos_tokenizer(c, num_steps=1500)
  c.model.name = 'tatok'
  # TaTok's decoder reads the kept patch tokens directly and never collapsed without the
  # zero pixel head (3 seeds, docs/natural_rgb.md); its results were measured without it.
  c.model.zero_pixel_head = False
  c.model.tatok.patch_codebook_size = 256  # 4 ** 4 (FSQ)
  c.model.tatok.patch_token_dim = 4
  common.set_vit(c.model.tatok.aligner, width=64, depth=2, num_heads=2)
  if 'runlocal' in variants:
    common.runlocal_photos(c, [c.model.encoder, c.model.decoder, c.model.tatok.aligner])
    c.model.tatok.patch_codebook_size, c.model.tatok.patch_token_dim = 64, 3
  return c

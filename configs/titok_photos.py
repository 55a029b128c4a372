"""TiTok on natural RGB photographs (photo_tiles_deb: 32x32 tiles, held-out photographs),
sized to train on a 2-core CPU in minutes (issue 21; docs/natural_rgb.md).

  bash launch/setup.sh --photos     # once: 3 Debian wallpaper packages, then the TFDS build
  python -m sbt_jax.main --config configs/titok_photos.py --workdir workdirs/titok_photos

16 FSQ tokens (8 bits each) + the tile's mean colour as 3 exact 8-bit ids: 152 bits per
tile; width-64, depth-2 ViTs; 1,500 steps of 64 tiles; eval on all 3,044 test tiles.
Compare with the trivial baselines (`python -m sbt_jax.tools.trivial_baselines`): the mean
colour alone gives 26.11 dB. Variants: `runlocal` (tiny models, a few steps: tests).
Results (3 seeds, curves, grids): docs/natural_rgb.md.
"""
from configs import common
from sbt_jax import config_defaults

VARIANTS = ('runlocal',)


def get_config(arg: str | None = None):
  variants = common.parse_variants(arg, VARIANTS, 'titok_photos')
  c = config_defaults.base_config()
  common.photos_tokenizer(c, num_steps=1500)
  if 'runlocal' in variants:
    common.runlocal_photos(c, [c.model.encoder, c.model.decoder])
  return c

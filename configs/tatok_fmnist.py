"""TaTok on Fashion-MNIST (28x28): G = 8 global tokens + up to N = 49 patch tokens kept by
Dynamic Token Filtering, sized like configs/selfboottok_fmnist.py (width 64, depth 3).

  python -m sbt_jax.main --config configs/tatok_fmnist.py --workdir workdirs/tatok_fmnist
  python -m sbt_jax.evaluate --workdir workdirs/tatok_fmnist --rate 0.5   # any rate r
  python benchmarks/tatok_rate_distortion.py --tatok_workdir workdirs/tatok_fmnist

One model serves every rate: training draws r ~ U(0, 1) per image. The eval during
training uses model.tatok.eval_rate. Variants, comma-separated: `runlocal` (tiny models and
a few steps, for tests and smoke runs).

Measured (1,000 steps, 17 min on the shared 2-core CPU; first 2,000 test images): r = 0
57 tokens/image, PSNR 20.65, LPIPS 0.160, FD-VGG 12.36; r = 0.3 37.5 tokens, 19.62 / 0.179
/ 14.63; r = 0.7 20 tokens, 16.96 / 0.243 / 20.56; r = 1 (global ids only) 8 tokens, 14.83
/ 0.310 / 28.07. Full table: docs/tatok.md.
"""
from configs import common
from sbt_jax import config_defaults

VARIANTS = ('runlocal',)


def get_config(arg: str | None = None):
  variants = common.parse_variants(arg, VARIANTS, 'tatok_fmnist')
  c = config_defaults.base_config()
  # G = 8, encoder/decoder of width 64 and depth 3, 1,000 steps; eval only at the end.
  common.fmnist_aligned_tokenizer(c, c.model.tatok.aligner)
  c.model.name = 'tatok'
  # Up to 7 x 7 = 49 patch tokens (r = 0), quantized with their own codebook.
  c.model.tatok.patch_codebook_size = 256
  c.model.tatok.patch_token_dim = 12
  if 'runlocal' in variants:
    vits = [c.model.encoder, c.model.decoder, c.model.tatok.aligner]
    common.runlocal_fmnist(c, vits, tokens=4, codebook=32)
    c.model.tatok.patch_codebook_size = 32
  return c

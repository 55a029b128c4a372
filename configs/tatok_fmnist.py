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
from sbt_jax import config_defaults

VARIANTS = {'runlocal'}


def get_config(arg: str | None = None):
  args = set(arg.split(',')) if arg else set()
  unknown = args - VARIANTS
  if unknown:
    raise ValueError(f'Unknown variants {sorted(unknown)} for tatok_fmnist; '
                     f'known: {sorted(VARIANTS)}')
  c = config_defaults.base_config()
  c.data.name = 'fashion_mnist_deb'
  c.data.image_size = 28
  c.data.channels = 1
  c.data.global_batch_size = 64
  c.model.name = 'tatok'
  c.model.patch_size = 4  # 7 x 7 = 49 patch tokens at r = 0
  c.model.num_latent_tokens = 8
  c.model.codebook_size = 256
  c.model.token_dim = 12
  c.model.tatok.patch_codebook_size = 256
  c.model.tatok.patch_token_dim = 12
  for part in (c.model.encoder, c.model.decoder):
    part.width, part.depth, part.num_heads = 64, 3, 2
  a = c.model.tatok.aligner
  a.width, a.depth, a.num_heads = 64, 2, 2
  c.loss.lpips_weight = 0.0  # 4x the step cost on a CPU; eval still reports LPIPS
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 100
  c.train.num_steps = 1000
  c.train.log_every = 50
  c.train.eval_every = 0  # only at the end
  c.train.checkpoint_every = 500
  c.train.eval_num_images = -1
  if 'runlocal' in args:
    for part in (c.model.encoder, c.model.decoder, c.model.tatok.aligner):
      part.width, part.depth, part.num_heads = 32, 1, 2
    c.model.num_latent_tokens = 4
    c.model.codebook_size = 32
    c.model.tatok.patch_codebook_size = 32
    c.data.global_batch_size = 16
    c.data.eval_batch_size = 32
    c.train.num_steps = 4
    c.train.log_every = 2
    c.train.checkpoint_every = 2
    c.train.eval_num_images = 64
    c.train.grid_num_images = 8
    c.optim.warmup_steps = 2
  return c

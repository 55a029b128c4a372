"""TiTok on Fashion-MNIST (28x28 grayscale), sized to train on a 2-core CPU in minutes.

  python -m sbt_jax.main --config configs/titok_fmnist.py --workdir workdirs/titok_fmnist

The loss is L1 + L2 + VQ: LPIPS (VGG16) would cost 4x the tokenizer's own step on a CPU at
this size, so it is off here (`--config.loss.lpips_weight=0.1` turns it on); eval still
reports LPIPS. Variants, comma-separated: `:runlocal` (a few steps on tiny models, for tests
and smoke runs), `:bf16` (bfloat16 matmuls with float32 params and accumulation: no faster
than float32 at this width on a 2-core CPU, 2x faster matmuls at S-128 sizes), `:crt` (CRT:
a 2-layer causal predictor of the next pre-quantization token, lambda = 4 ramped over the
first 500 of the 1,500 steps; docs/crt.md).
Results on the test split: docs/titok.md.
"""
from sbt_jax import config_defaults


def get_config(arg: str | None = None):
  args = set(arg.split(',')) if arg else set()
  unknown = args - {'runlocal', 'bf16', 'crt'}
  if unknown:
    raise ValueError(f'Unknown variants {sorted(unknown)} for titok_fmnist; '
                     "known: 'runlocal', 'bf16', 'crt'")
  c = config_defaults.base_config()
  c.data.name = 'fashion_mnist_deb'
  c.data.image_size = 28
  c.data.channels = 1
  c.data.global_batch_size = 64
  c.model.patch_size = 4  # 7 x 7 = 49 patches
  c.model.num_latent_tokens = 16
  c.model.codebook_size = 256
  c.model.token_dim = 12
  for part in (c.model.encoder, c.model.decoder):
    part.width, part.depth, part.num_heads = 128, 4, 4
  c.loss.lpips_weight = 0.0
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 100
  c.train.num_steps = 1500
  c.train.log_every = 50
  c.train.eval_every = 500
  c.train.checkpoint_every = 500
  c.train.eval_num_images = -1  # the whole test split (10,000 images)
  c.model.compute_dtype = 'bfloat16' if 'bf16' in args else 'float32'
  if 'crt' in args:
    c.crt.enabled = True
    c.crt.ramp_steps = 500  # the spec's 1k would leave lambda < 4 for 2/3 of a short run
  if 'runlocal' in args:
    for part in (c.model.encoder, c.model.decoder):
      part.width, part.depth, part.num_heads = 32, 1, 2
    c.model.num_latent_tokens = 8
    c.model.codebook_size = 64
    c.data.global_batch_size = 16
    c.data.eval_batch_size = 32
    c.train.num_steps = 4
    c.train.log_every = 2
    c.train.eval_every = 0
    c.train.checkpoint_every = 2
    c.train.eval_num_images = 64
    c.train.grid_num_images = 8
    c.optim.warmup_steps = 2
    c.crt.predictor.width, c.crt.predictor.num_heads = 32, 2
    c.crt.ramp_steps = 2
    c.crt.optim.warmup_steps = 1
  return c

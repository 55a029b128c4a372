"""Class-conditional MaskGIT (or AR) over a Fashion-MNIST tokenizer's ids, CPU-sized.

  python -m sbt_jax.main --config configs/generator_fmnist.py \
      --config.generator.tokenizer_workdir=$PWD/workdirs/titok_fmnist \
      --workdir workdirs/maskgit_fmnist
  python -m sbt_jax.sample --workdir workdirs/maskgit_fmnist --num_samples 100 --out samples/

The tokenizer run (e.g. configs/titok_fmnist.py) must be finished: its latest checkpoint is
loaded, frozen, and its ids of the train and test splits are cached once under
<workdir>/token_cache (`--config.generator.use_token_cache=False` encodes every batch in
the train step instead). Variants, comma-separated: `:ar` (autoregressive with a causal
mask instead of MaskGIT), `:runlocal` (a few steps of a tiny model, for tests and smoke runs).
"""
from configs import common
from sbt_jax import config_defaults

VARIANTS = ('runlocal', 'ar')


def get_config(arg: str | None = None):
  variants = common.parse_variants(arg, VARIANTS, 'generator_fmnist')
  c = config_defaults.base_config()
  common.fmnist_data(c, batch_size=128)
  common.generator_stage(c, 'ar' if 'ar' in variants else 'maskgit', num_classes=10)
  g = c.generator
  common.set_vit(g.transformer, width=128, depth=4, num_heads=4)
  g.sampling.choice_temperature = 4.5  # Gumbel noise on which positions stay masked
  g.sampling.guidance_scale = 1.0  # classifier-free guidance
  g.sampling.guidance_schedule = 'linear'  # guidance grows along the decoding steps
  c.optim.learning_rate = 1e-3  # peak, after 100 warmup steps
  c.optim.warmup_steps = 100
  c.optim.weight_decay = 0.03
  c.optim.ema_decay = 0.999  # EMA of the params (eval uses it)
  c.train.num_steps = 3000
  c.train.log_every = 100
  c.train.eval_every = 1000  # and at the end
  c.train.checkpoint_every = 1000
  c.train.eval_num_images = -1  # the whole test split
  c.train.grid_num_images = 50  # 5 samples of each of the 10 classes
  if 'runlocal' in variants:
    common.runlocal_fmnist(c, [g.transformer], eval_batch_size=16, eval_num_images=20,
                           grid_num_images=10)
    g.sampling.num_steps = 4
  return c

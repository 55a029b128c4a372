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
from sbt_jax import config_defaults


def get_config(arg: str | None = None):
  args = set(arg.split(',')) if arg else set()
  unknown = args - {'runlocal', 'ar'}
  if unknown:
    raise ValueError(f'Unknown variants {sorted(unknown)} for generator_fmnist; '
                     "known: 'runlocal', 'ar'")
  c = config_defaults.base_config()
  c.stage = 'generator'
  c.data.name = 'fashion_mnist_deb'
  c.data.image_size = 28
  c.data.channels = 1
  c.data.global_batch_size = 128
  c.data.eval_batch_size = 250
  g = c.generator
  g.type = 'ar' if 'ar' in args else 'maskgit'
  g.transformer.width, g.transformer.depth, g.transformer.num_heads = 128, 4, 4
  g.num_classes = 10
  g.label_drop = 0.1
  g.label_smoothing = 0.1
  g.use_token_cache = True
  g.sampling.num_steps = 8
  g.sampling.choice_temperature = 4.5
  g.sampling.guidance_scale = 1.0
  g.sampling.guidance_schedule = 'linear'
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 100
  c.optim.weight_decay = 0.03
  c.optim.ema_decay = 0.999
  c.train.num_steps = 3000
  c.train.log_every = 100
  c.train.eval_every = 1000
  c.train.checkpoint_every = 1000
  c.train.eval_num_images = -1
  c.train.grid_num_images = 50
  if 'runlocal' in args:
    g.transformer.width, g.transformer.depth, g.transformer.num_heads = 32, 1, 2
    g.sampling.num_steps = 4
    c.data.global_batch_size = 16
    c.data.eval_batch_size = 16
    c.train.num_steps = 4
    c.train.log_every = 2
    c.train.eval_every = 0
    c.train.checkpoint_every = 2
    c.train.eval_num_images = 20
    c.train.grid_num_images = 10
    c.optim.warmup_steps = 2
  return c

"""SelfBootTok on Fashion-MNIST (28x28), sized to train on a 2-core CPU in minutes.

  python -m sbt_jax.main --config configs/selfboottok_fmnist.py --workdir workdirs/sbt_fmnist
  # a larger 2D aligner against the frozen tokenizer (the aligner stage):
  python -m sbt_jax.main --config configs/selfboottok_fmnist.py:aligner \
      --config.aligner.tokenizer_workdir=workdirs/sbt_fmnist --workdir workdirs/sbt_fmnist_al

G = 8 global + L = 8 local tokens, each codebook 256 entries; encoder/decoder as in
configs/titok_fmnist.py but narrower (width 64, depth 3),
so that the whole comparison table trains in about an hour on 2 cores. Variants, comma-separated:
  runlocal  tiny models and a few steps (tests, smoke runs)
  latent    local_tokens='latent' (L extra encoder queries, no OT): the control
  soft      SoftVQ-style global quantizer instead of VQ
  aligner   stage='aligner': a 'small'-ish aligner (width 128, depth 4) in two phases
  titok     the same encoder/decoder as TiTok with G tokens (model.name='titok')
  titok16   TiTok with G + L = 16 tokens (the compress-mode baseline)
  crt       CRT on the global tokens: a 2-layer causal predictor of the next
            pre-quantization token, lambda = 4 ramped over the first 500 of the 1,000
            steps (the spec's 1k would end the run mid-ramp); e.g. `:titok,crt`
Results on the test split: docs/selfboottok.md, docs/crt.md.
"""
from sbt_jax import config_defaults

VARIANTS = {'runlocal', 'latent', 'soft', 'aligner', 'titok', 'titok16', 'crt'}


def get_config(arg: str | None = None):
  args = set(arg.split(',')) if arg else set()
  unknown = args - VARIANTS
  if unknown:
    raise ValueError(f'Unknown variants {sorted(unknown)} for selfboottok_fmnist; '
                     f'known: {sorted(VARIANTS)}')
  c = config_defaults.base_config()
  c.data.name = 'fashion_mnist_deb'
  c.data.image_size = 28
  c.data.channels = 1
  c.data.global_batch_size = 64
  c.model.name = 'selfboottok'
  c.model.patch_size = 4  # 7 x 7 = 49 patches
  c.model.num_latent_tokens = 8
  c.model.codebook_size = 256
  c.model.token_dim = 12
  c.model.num_local_tokens = 8
  c.model.local_codebook_size = 256
  c.model.local_token_dim = 12
  for part in (c.model.encoder, c.model.decoder):
    part.width, part.depth, part.num_heads = 64, 3, 2
  c.model.aligner.width, c.model.aligner.depth, c.model.aligner.num_heads = 64, 2, 2
  c.loss.lpips_weight = 0.0  # 4x the step cost on a CPU; eval still reports LPIPS
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 100
  c.train.num_steps = 1000
  c.train.log_every = 50
  c.train.eval_every = 0  # only at the end (both modes over the whole test split)
  c.train.checkpoint_every = 500
  c.train.eval_num_images = -1
  if 'latent' in args:
    c.model.local_tokens = 'latent'
  if 'soft' in args:
    c.model.global_quantizer = 'soft'
  if 'titok' in args or 'titok16' in args:
    c.model.name = 'titok'
    c.model.num_latent_tokens = 16 if 'titok16' in args else 8
  if 'crt' in args:
    c.crt.enabled = True
    c.crt.ramp_steps = 500
  if 'aligner' in args:
    c.stage = 'aligner'
    c.aligner.model.width, c.aligner.model.depth, c.aligner.model.num_heads = 128, 4, 4
    c.aligner.phase1_steps = c.train.num_steps // 2
    c.optim.weight_decay = 0.0
  if 'runlocal' in args:
    for part in (c.model.encoder, c.model.decoder, c.model.aligner, c.aligner.model):
      part.width, part.depth, part.num_heads = 32, 1, 2
    if 'aligner' in args:
      c.aligner.model.width = 48
    c.model.num_latent_tokens = 4
    c.model.num_local_tokens = 4
    c.model.codebook_size = 32
    c.model.local_codebook_size = 32
    c.model.ot.max_iterations = 100
    c.data.global_batch_size = 16
    c.data.eval_batch_size = 32
    c.train.num_steps = 4
    c.aligner.phase1_steps = 2
    c.train.log_every = 2
    c.train.checkpoint_every = 2
    c.train.eval_num_images = 64
    c.train.grid_num_images = 8
    c.optim.warmup_steps = 2
    c.crt.predictor.width, c.crt.predictor.num_heads = 32, 2
    c.crt.ramp_steps = 2
    c.crt.optim.warmup_steps = 1
  return c

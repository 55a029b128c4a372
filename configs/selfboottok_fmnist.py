"""SelfBootTok on Fashion-MNIST (28x28), sized to train on a 2-core CPU in minutes.

The recipe that measured best (docs/selfboottok_vs_titok.md, 3 seeds): this config, then its
decoder (+ aligner) fine-tune with the discriminator from that run:
  python -m sbt_jax.main --config configs/selfboottok_fmnist.py --workdir workdirs/sbt_fmnist
  python -m sbt_jax.main --config configs/selfboottok_fmnist.py:finetune \
      --config.train.init_from=workdirs/sbt_fmnist --workdir workdirs/sbt_fmnist_ft
  # a larger 2D aligner against the frozen tokenizer (the aligner stage):
  python -m sbt_jax.main --config configs/selfboottok_fmnist.py:aligner \
      --config.aligner.tokenizer_workdir=workdirs/sbt_fmnist --workdir workdirs/sbt_fmnist_al

G = 8 global + L = 8 local tokens, each codebook 256 entries; encoder/decoder as in
configs/titok_fmnist.py but narrower (width 64, depth 3),
so that the whole comparison table trains in about an hour on 2 cores. Variants, comma-separated:
  runlocal  tiny models and a few steps (tests, smoke runs)
  latent    local_tokens='latent' (L extra encoder queries, no OT): the control
  soft      SoftVQ-style global quantizer instead of VQ
  ema       the aligner's 2D targets from the EMA encoder (a BYOL/DINO-style teacher,
            optim.ema_decay = 0.999) instead of the same encoder under stop-gradient
  softlocal generate mode decodes softmax(aligner logits) @ local codebook (no local ids),
            and the decoder trains on exactly that (loss.w_generate = 1)
  aligner   stage='aligner': a 'small'-ish aligner (width 128, depth 4) in two phases
  titok     the same encoder/decoder as TiTok with G tokens (model.name='titok')
  titok16   TiTok with G + L = 16 tokens (the compress-mode baseline)
  crt       CRT on the global tokens: a 2-layer causal predictor of the next
            pre-quantization token, lambda = 4 ramped over the first 500 of the 1,000
            steps (the spec's 1k would end the run mid-ramp); e.g. `:titok,crt`
  adv       the adversarial recipe (docs/adversarial.md): a 2-stage patch discriminator
            (width 32, 7 x 7 logits) with hinge + LeCam from step 250; e.g. `:titok,adv`
  finetune  decoder fine-tuning (TiTok's stage 2) of a finished run with the adversarial
            recipe: 500 steps, only the decoder trains (SelfBootTok: decoder and aligner,
            on compress- and generate-mode reconstructions); needs
            --config.train.init_from=<workdir of the finished run>; e.g. `:titok,finetune`
Results on the test split: docs/selfboottok.md, docs/crt.md.
"""
from configs import common
from sbt_jax import config_defaults

VARIANTS = ('runlocal', 'latent', 'soft', 'ema', 'softlocal', 'aligner', 'titok', 'titok16',
            'crt', 'adv', 'finetune')


def get_config(arg: str | None = None):
  variants = common.parse_variants(arg, VARIANTS, 'selfboottok_fmnist')
  c = config_defaults.base_config()
  # G = 8, encoder/decoder of width 64 and depth 3, 1,000 steps; eval only at the end (both
  # modes over the whole test split).
  common.fmnist_aligned_tokenizer(c, c.model.aligner)
  c.model.name = 'selfboottok'
  c.model.num_local_tokens = 8  # L
  c.model.local_codebook_size = 256  # the local tokens' own codebook
  c.model.local_token_dim = 12
  if 'latent' in variants:
    c.model.local_tokens = 'latent'
  if 'soft' in variants:
    c.model.global_quantizer = 'soft'
  if 'ema' in variants:
    c.model.align_targets = 'ema'
  if 'softlocal' in variants:
    c.model.generate_local = 'soft'
    c.loss.w_generate = 1.0
  if 'titok' in variants or 'titok16' in variants:
    c.model.name = 'titok'
    c.model.num_global_tokens = 16 if 'titok16' in variants else 8
  if 'crt' in variants:
    c.crt.enabled = True
    c.crt.ramp_steps = 500
  if 'adv' in variants or 'finetune' in variants:
    _adversarial(c, finetune='finetune' in variants)
  if 'aligner' in variants:
    c.stage = 'aligner'
    common.set_vit(c.aligner.model, width=128, depth=4, num_heads=4)
    c.aligner.phase1_steps = c.train.num_steps // 2  # phase 1: 2D alignment loss only
    c.optim.weight_decay = 0.0
  if 'runlocal' in variants:
    _runlocal(c, aligner_stage='aligner' in variants)
  return c


def _adversarial(c, finetune):
  """The reference's recipe scaled to 28 x 28 and 1,000 steps (LPIPS stays off: it costs 4x
  the step on a CPU, and ConvNeXt-S at 224 px far more)."""
  a = c.adversarial
  a.enabled = True
  # The reference's single-stage run starts D at 200k of 650k steps: after the tokenizer
  # has learned the coarse image. Here a quarter of the run; fine-tuning starts from a
  # finished tokenizer, so at once.
  a.start_step = 0 if finetune else 250
  a.weight = 0.1  # discriminator_weight of the reference's single-stage recipes
  d = a.discriminator
  d.hidden_channels = 32  # 28 -> 14 -> 7: two stages of 32 and 64 channels
  d.num_stages = 2
  d.num_groups = 8
  d.pool_size = 7  # one logit per 4 x 4 pixels, as 16 x 16 logits of a 256 px image
  a.optim.learning_rate = c.optim.learning_rate  # the reference trains D at the tokenizer's
  if finetune:
    # Encoder and quantizers stay bit-identical: the same ids. SelfBootTok's aligner trains
    # beside the decoder, which also learns to decode the aligner's predicted local ids
    # (generate mode, weighted as compress mode): the aligner stage's decoder phase.
    c.train.trainable = 'decoder' if c.model.name == 'titok' else 'decoder,aligner'
    if c.model.name == 'selfboottok':
      c.loss.w_generate = 1.0
    c.train.num_steps = 500
    c.optim.learning_rate = a.optim.learning_rate = 3e-4
    c.optim.warmup_steps = a.optim.warmup_steps = 50


def _runlocal(c, aligner_stage):
  """Tiny models, G = L = 4 tokens from 32-entry codebooks, 4 steps."""
  vits = [c.model.encoder, c.model.decoder, c.model.aligner, c.aligner.model]
  common.runlocal_fmnist(c, vits, tokens=4, codebook=32, crt=True)
  if aligner_stage:
    c.aligner.model.width = 48
  c.model.num_local_tokens = 4
  c.model.local_codebook_size = 32
  c.model.ot.max_iterations = 100
  c.aligner.phase1_steps = 2

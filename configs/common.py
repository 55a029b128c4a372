"""What the configs in this folder share, so that each file says only what is its own.

Variant parsing (`file.py:a,b`), ViT sizes, the Fashion-MNIST and ImageNet-256 data and
schedule blocks, the generator stage, and the `runlocal` shrink (tiny models, a few steps)
that tests and smoke runs use. Every helper sets fields of a `base_config()`; none adds keys.
"""
from sbt_jax import config_defaults


def parse_variants(arg, known, config_name, default=()):
  """'a,b' -> {'a', 'b'} ('' or None: set(default)); one ValueError line for unknown ones."""
  variants = set(arg.split(',')) if arg else set(default)
  unknown = variants - set(known)
  if unknown:
    raise ValueError(f'Unknown variants {sorted(unknown)} for {config_name}; '
                     f'known: {sorted(known)}')
  return variants


def pick_one(variants, choices, config_name, required=True):
  """The one of `choices` among `variants` (None if none and not required)."""
  picked = variants & set(choices)
  if len(picked) > 1 or (required and not picked):
    how_many = 'exactly' if required else 'at most'
    raise ValueError(f'{config_name} variants {sorted(variants)}: pick {how_many} one of '
                     f'{sorted(choices)}')
  return picked.pop() if picked else None


def vit_size(name):
  """config_defaults.MODEL_SIZES[name] as set_vit's keyword arguments."""
  width, depth, num_heads = config_defaults.MODEL_SIZES[name]
  return dict(width=width, depth=depth, num_heads=num_heads)


def set_vit(*vits, width, depth, num_heads):
  """Gives each ViT section (encoder, decoder, aligner, ...) these sizes."""
  for vit in vits:
    vit.width, vit.depth, vit.num_heads = width, depth, num_heads


def fmnist_data(c, batch_size, eval_batch_size=250):
  """Fashion-MNIST from TFDS, 28x28 grayscale."""
  c.data.name = 'fashion_mnist_deb'
  c.data.image_size = 28
  c.data.channels = 1
  c.data.global_batch_size = batch_size
  c.data.eval_batch_size = eval_batch_size


def fmnist_tokenizer(c, num_steps, eval_every):
  """A tokenizer that trains on a 2-core CPU in minutes: 7 x 7 patches, no LPIPS in the loss."""
  fmnist_data(c, batch_size=64)
  c.model.patch_size = 4  # 7 x 7 = 49 patches
  c.model.codebook_size = 256
  c.model.token_dim = 12
  c.loss.perceptual_weight = 0.0  # 4x the step cost on a CPU; eval still reports LPIPS
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 100
  c.train.num_steps = num_steps
  c.train.log_every = 50
  c.train.eval_every = eval_every  # 0: only at the end
  c.train.checkpoint_every = 500
  c.train.eval_num_images = -1  # the whole test split (10,000 images)


def fmnist_aligned_tokenizer(c, aligner):
  """SelfBootTok and TaTok on Fashion-MNIST: G = 8, width-64 ViTs, eval only at the end."""
  fmnist_tokenizer(c, num_steps=1000, eval_every=0)
  c.model.num_global_tokens = 8
  set_vit(c.model.encoder, c.model.decoder, width=64, depth=3, num_heads=2)
  set_vit(aligner, width=64, depth=2, num_heads=2)  # the aligner of the second token kind


def photos_tokenizer(c, num_steps, width=64, depth=2):
  """32x32 RGB tiles of photo_tiles_deb (bash launch/setup.sh --photos; held-out photographs
  in 'test'), sized to train on a 2-core CPU in minutes. The fix of docs/natural_rgb.md:
  each tile's mean colour as 3 exact 8-bit side ids, FSQ codebooks (256 = 4 levels ** 4
  dims, 8 bits per token) instead of the cosine VQ, and spatially mixed latents."""
  c.data.name = 'photo_tiles_deb'
  c.data.image_size = 32
  c.data.channels = 3
  c.data.global_batch_size = 64
  c.data.eval_batch_size = 256
  c.model.patch_size = 4  # 8 x 8 = 64 patches
  c.model.num_global_tokens = 16  # 16 x 8 = 128 bits, + 24 bits of colour ids
  c.model.quantizer = 'fsq'
  c.model.codebook_size = 256
  c.model.token_dim = 4
  c.model.colour_levels = 256  # 8 bits per channel
  c.model.spatial_mix = True  # latents / mask rows start from learned mixes of the content
  c.model.zero_pixel_head = True  # start at the colour: no output noise to suppress first
  set_vit(c.model.encoder, c.model.decoder, width=width, depth=depth, num_heads=2)
  c.loss.perceptual_weight = 0.0  # 4x the step cost on a CPU; eval still reports LPIPS
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 100
  c.train.num_steps = num_steps
  c.train.log_every = 50
  c.train.eval_every = 0  # only at the end: one eval of the whole split takes ~5 min on 2 cores
  c.train.checkpoint_every = 500
  c.train.eval_num_images = -1  # the whole test split (3,044 tiles of 6 unseen photographs)


def runlocal_photos(c, vits):
  """`runlocal` of a photos config: 4 steps of 16 tiles, 64-entry codebooks (4 ** 3)."""
  runlocal_fmnist(c, vits, tokens=4, codebook=64)
  c.model.token_dim = 3
  c.model.colour_levels = 64


def imagenet256_data(c, batch_size, eval_batch_size):
  """ImageNet-2012 prepared by TFDS (array_record) at 256x256 RGB; eval on validation."""
  c.data.name = 'imagenet2012'
  c.data.train_split = 'train'
  c.data.eval_split = 'validation'
  c.data.image_size = 256
  c.data.channels = 3
  c.data.global_batch_size = batch_size
  c.data.eval_batch_size = eval_batch_size
  c.data.read_threads = 16
  # JPEG decoding and resizing need worker processes at this scale (main runs under absl).
  c.data.worker_count = 8


def imagenet256_schedule(c, num_steps):
  """A paper-scale run: 10k warmup steps, eval on 10k validation images every 10k steps."""
  c.optim.warmup_steps = 10_000
  c.train.num_steps = num_steps
  c.train.log_every = 100
  c.train.eval_every = 10_000
  c.train.eval_num_images = 10_000
  c.train.checkpoint_every = 5_000
  c.train.keep_checkpoints = 3


def single_stage_recipe(c):
  """bytedance/1d-tokenizer's released single-stage tokenizer recipe (its
  configs/training/TA-TiTok/tatitok_bl64_vq.yaml, the settings of the TiTok-BL/SL weights):
  L2 reconstruction, LPIPS + ConvNeXt-S perceptual, a patch discriminator with hinge + LeCam
  from step 200k, AdamW 1e-4 for both networks, 650k steps of 1,024 images. ConvNeXt-S
  weights are the user's file: --config.loss.convnext_weights=convnext_small-0c510722.pth."""
  c.data.global_batch_size = 1024  # max_train_examples 685.8M / max_train_steps 650k
  c.loss.l1_weight = 0.0  # reconstruction_loss: "l2", reconstruction_weight: 1.0
  c.loss.l2_weight = 1.0
  c.loss.quantizer_weight = 1.0
  c.model.commitment_cost = 0.25
  c.loss.perceptual = 'lpips-convnext_s-1.0-0.1'  # (LPIPS + 0.1 ConvNeXt) / 1.1
  c.loss.perceptual_weight = 1.1  # so: LPIPS + 0.1 ConvNeXt
  imagenet256_schedule(c, num_steps=650_000)
  _reference_adamw_and_discriminator(c, warmup_steps=10_000, d_start=200_000, d_weight=0.1)


def _reference_adamw_and_discriminator(c, warmup_steps, d_start, d_weight):
  """What the reference's recipes share: AdamW 1e-4 (betas 0.9/0.999, weight decay 1e-4)
  for the tokenizer and the discriminator, warmup then cosine to 1e-5, gradient clipping 1,
  EMA; a patch discriminator with hinge + LeCam from step d_start, weighted d_weight."""
  c.optim.learning_rate = 1e-4
  c.optim.b1, c.optim.b2 = 0.9, 0.999
  c.optim.weight_decay = 1e-4
  c.optim.end_lr_fraction = 0.1  # cosine to end_lr 1e-5
  c.optim.grad_clip_norm = 1.0  # max_grad_norm
  c.optim.ema_decay = 0.999  # use_ema
  c.optim.warmup_steps = warmup_steps
  a = c.adversarial
  a.enabled = True
  a.start_step = d_start  # discriminator_start
  a.factor = 1.0  # discriminator_factor
  a.weight = d_weight  # discriminator_weight
  a.lecam_weight = 0.001  # lecam_regularization_weight
  a.optim.learning_rate = 1e-4  # discriminator_learning_rate, same AdamW and schedule
  a.optim.b2 = 0.999
  a.optim.warmup_steps = warmup_steps
  a.optim.weight_decay = 1e-4


def decoder_finetune_recipe(c):
  """bytedance/1d-tokenizer's TiTok stage 2 (its configs/training/TiTok/stage2/titok_b64.yaml):
  fine-tune the decoder of a finished tokenizer (train.init_from) while the encoder and
  quantizer stay frozen, so its ids and the generators trained on them stay valid. L2 +
  ConvNeXt-S perceptual (0.1), a patch discriminator (weight 0.01, hinge + LeCam) from step
  20k, AdamW 1e-4 for both networks, 500k steps. SelfBootTok's aligner trains beside the
  decoder, which also learns to decode the aligner's predicted local ids (loss.w_generate):
  the recipe that measured best on Fashion-MNIST (docs/selfboottok_vs_titok.md). ConvNeXt-S
  weights are the user's file: --config.loss.convnext_weights=convnext_small-0c510722.pth."""
  c.train.trainable = 'decoder,aligner' if c.model.name == 'selfboottok' else 'decoder'
  if c.model.name == 'selfboottok':
    c.loss.w_generate = 1.0  # generate mode weighted as compress mode
  c.loss.l1_weight = 0.0  # reconstruction_loss: "l2", reconstruction_weight: 1.0
  c.loss.l2_weight = 1.0
  c.loss.quantizer_weight = 0.0  # frozen quantizer
  c.loss.perceptual = 'convnext_s'  # perceptual_loss: "convnext_s"
  c.loss.perceptual_weight = 0.1
  c.train.num_steps = 500_000
  _reference_adamw_and_discriminator(c, warmup_steps=5_000, d_start=20_000, d_weight=0.01)


def recipe_runlocal(c):
  """`runlocal` of a config with the single-stage recipe: LPIPS only (no ConvNeXt file in
  tests), the discriminator on from step 1, a small one."""
  c.loss.perceptual = 'lpips'
  c.adversarial.start_step = 1
  c.adversarial.discriminator.hidden_channels = 32
  c.adversarial.discriminator.num_stages = 2
  c.adversarial.discriminator.num_groups = 8
  c.adversarial.discriminator.pool_size = 4
  c.adversarial.optim.warmup_steps = 1


def generator_stage(c, kind, num_classes):
  """stage='generator' on cached token ids, with TiTok's label drop and smoothing."""
  c.stage = 'generator'
  g = c.generator
  g.type = kind  # 'maskgit' or 'ar'
  g.num_classes = num_classes
  g.label_drop = 0.1  # null-class labels, for classifier-free guidance
  g.label_smoothing = 0.1
  g.use_token_cache = True  # encode each split once (<workdir>/token_cache)
  g.sampling.num_steps = 8  # MaskGIT decoding steps


def runlocal(c, vits, width, crt, tokens, codebook):
  """What every `runlocal` shrinks: one-block ViTs, a checkpoint every 2 steps.

  crt: also narrow the CRT predictor (configs with a `crt` variant; its depth stays 2).
  tokens, codebook: the global tokens per image and codebook entries (None: unchanged).
  """
  set_vit(*vits, width=width, depth=1, num_heads=2)
  if crt:
    c.crt.predictor.width, c.crt.predictor.num_heads = width, 2
  if tokens is not None:
    c.model.num_global_tokens = tokens
  if codebook is not None:
    c.model.codebook_size = codebook
  c.data.worker_count = 0  # decode in the main process
  c.train.checkpoint_every = 2


def runlocal_fmnist(c, vits, tokens=None, codebook=None, crt=False, eval_batch_size=32,
                    eval_num_images=64, grid_num_images=8):
  """`runlocal` of a Fashion-MNIST config: 4 steps of 16 images, eval only at the end."""
  runlocal(c, vits, width=32, crt=crt, tokens=tokens, codebook=codebook)
  c.data.global_batch_size = 16
  c.data.eval_batch_size = eval_batch_size
  c.train.num_steps = 4
  c.train.log_every = 2
  c.train.eval_every = 0
  c.train.eval_num_images = eval_num_images
  c.train.grid_num_images = grid_num_images
  c.optim.warmup_steps = 2
  if crt:
    c.crt.ramp_steps = 2
    c.crt.optim.warmup_steps = 1


def runlocal_imagenet256(c, vits, tokens=None, codebook=None, crt=False):
  """`runlocal` of an ImageNet-256 config: 2 steps of 8 images, no eval, width-64 ViTs."""
  runlocal(c, vits, width=64, crt=crt, tokens=tokens, codebook=codebook)
  c.data.global_batch_size = 8
  c.data.eval_batch_size = 8
  c.train.num_steps = 2
  c.train.eval_every = -1

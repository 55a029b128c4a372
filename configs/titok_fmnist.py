"""TiTok on Fashion-MNIST (28x28 grayscale), sized to train on a 2-core CPU in minutes.

  python -m sbt_jax.main --config configs/titok_fmnist.py --workdir workdirs/titok_fmnist

The loss is L1 + L2 + VQ: LPIPS (VGG16) would cost 4x the tokenizer's own step on a CPU at
this size, so it is off here (`--config.loss.perceptual_weight=0.1` turns it on); eval still
reports LPIPS. Variants, comma-separated: `:runlocal` (a few steps on tiny models, for tests
and smoke runs), `:bf16` (bfloat16 matmuls with float32 params and accumulation: no faster
than float32 at this width on a 2-core CPU, 2x faster matmuls at S-128 sizes), `:crt` (CRT:
a 2-layer causal predictor of the next pre-quantization token, lambda = 4 ramped over the
first 500 of the 1,500 steps; docs/crt.md).
Results on the test split: docs/titok.md.
"""
from configs import common
from sbt_jax import config_defaults

VARIANTS = ('runlocal', 'bf16', 'crt')


def get_config(arg: str | None = None):
  variants = common.parse_variants(arg, VARIANTS, 'titok_fmnist')
  c = config_defaults.base_config()
  common.fmnist_tokenizer(c, num_steps=1500, eval_every=500)
  c.model.num_global_tokens = 16  # K
  common.set_vit(c.model.encoder, c.model.decoder, width=128, depth=4, num_heads=4)
  c.model.compute_dtype = 'bfloat16' if 'bf16' in variants else 'float32'  # matmul operands
  if 'crt' in variants:
    c.crt.enabled = True
    c.crt.ramp_steps = 500  # the spec's 1k would leave lambda < 4 for 2/3 of a short run
  if 'runlocal' in variants:
    common.runlocal_fmnist(c, [c.model.encoder, c.model.decoder], tokens=8, codebook=64,
                           crt=True)
  return c

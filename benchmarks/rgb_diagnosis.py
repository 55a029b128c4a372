"""Why TiTok sits at the mean colour on natural RGB tiles: one ablation per run (issue 21).

  python benchmarks/rgb_diagnosis.py --name vit_vq                       # TiTok as it is
  python benchmarks/rgb_diagnosis.py --name vit_raw --bottleneck raw     # no quantizer
  python benchmarks/rgb_diagnosis.py --name lin_raw --bottleneck raw --encoder linear \
      --decoder linear                                                   # a linear autoencoder

Trains an autoencoder on photo_tiles_deb/train (prepared by `bash launch/setup.sh --photos`)
with TiTok's own encoder and decoder (sbt_jax/models/titok.py) or a single Dense layer in
their place, and one of these bottlenecks between them (G tokens of token_dim values each):

  vq      TiTok's quantizer: nearest l2-normalised code, straight-through (8 bits per token
          with 256 codes)
  cosine  the same l2-normalisation of each token, no quantization (continuous)
  raw     the encoder's tokens as they are (continuous)
  fsq     finite scalar quantization (Mentzer et al. 2023): tanh, then `levels` values per
          dimension, straight-through (token_dim * log2(levels) bits per token)

--center feeds the encoder each tile minus its mean colour and adds the mean back to the
decoder's output (the mean passes beside the tokens: a diagnostic, not a tokenizer).
The loss is TiTok's L1 + L2 (+ the VQ terms for vq), AdamW with warm-up and cosine decay as
in configs/titok_fmnist.py, batches of 64 drawn with a fixed seed (the same batches for
every ablation). At the end: the mean per-image PSNR (dB, [0, 1] space, as the tokenizer eval
computes it) on the first --eval_images tiles of the held-out test split, and the PSNR of the
reconstruction's mean colour against the tile's (colour fidelity, from test_colour_psnr on),
appended with the options, commit and CPU flags to --out. Compare with each tile's mean colour:
`python -m sbt_jax.tools.trivial_baselines`.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import records  # pylint: disable=g-import-not-at-top,wrong-import-position
from configs import titok_fmnist  # pylint: disable=g-import-not-at-top,wrong-import-position
from sbt_jax.models import quantizer as quantizer_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from sbt_jax.models import titok  # pylint: disable=g-import-not-at-top,wrong-import-position
from sbt_jax.models import vit  # pylint: disable=g-import-not-at-top,wrong-import-position


def fsq(z, levels):
  """Finite scalar quantization of every value to `levels` steps in [-1, 1]."""
  half = (levels - 1) / 2
  offset = 0.5 if levels % 2 == 0 else 0.0
  bounded = jnp.tanh(z) * half - offset
  return (bounded + jax.lax.stop_gradient(jnp.round(bounded) - bounded) + offset) / half


class Autoencoder(nn.Module):
  """Encoder -> bottleneck -> decoder; returns (reconstruction, VQ loss terms)."""
  config: object
  args: object

  @nn.compact
  def __call__(self, x_BxHxWxC):
    a, c = self.args, self.config
    b = x_BxHxWxC.shape[0]
    g, t = c.model.num_global_tokens, c.model.token_dim
    model = titok.build_tokenizer(c)
    if a.encoder == 'linear':
      z_BxGxT = nn.Dense(g * t)(x_BxHxWxC.reshape(b, -1)).reshape(b, g, t)
    else:
      z_BxGxT = titok.Encoder(model.geometry, t, model.encoder_cfg, model.options,
                              patch_states=False)(x_BxHxWxC)[0]
    z_BxGxT = z_BxGxT.astype(jnp.float32)
    vq_loss = 0.0
    if a.bottleneck == 'vq':
      q_BxGxT, aux = quantizer_lib.VectorQuantizer(c.model.codebook_size, t)(z_BxGxT)
      vq_loss = aux['codebook_loss'] + c.model.commitment_cost * aux['commit_loss']
    elif a.bottleneck == 'cosine':
      q_BxGxT = quantizer_lib.l2_normalize(z_BxGxT)
    elif a.bottleneck == 'fsq':
      q_BxGxT = fsq(z_BxGxT, a.levels)
    else:
      q_BxGxT = z_BxGxT
    if a.decoder == 'linear':
      recon = nn.Dense(x_BxHxWxC[0].size)(q_BxGxT.reshape(b, -1)).reshape(x_BxHxWxC.shape)
    else:
      recon = titok.Decoder(model.geometry, model.decoder_cfg, model.options)(q_BxGxT)
    return recon, vq_loss


def load_split(split, num_photos=0):
  """Tiles of `split` in [-1, 1]; num_photos > 0: only those of its first num_photos photos."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from sbt_jax.data import photo_tiles_deb  # pylint: disable=g-import-not-at-top,unused-import
  source = tfds.builder('photo_tiles_deb').as_data_source(split=split)
  examples = [source[i] for i in range(len(source))]
  if num_photos > 0:
    keep = sorted({int(e['label']) for e in examples})[:num_photos]
    examples = [e for e in examples if int(e['label']) in keep]
  images = np.stack([e['image'] for e in examples])
  return images.astype(np.float32) / 127.5 - 1.0


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--name', required=True)
  p.add_argument('--bottleneck', default='vq', choices=('vq', 'cosine', 'raw', 'fsq'))
  p.add_argument('--encoder', default='vit', choices=('vit', 'linear'))
  p.add_argument('--decoder', default='vit', choices=('vit', 'linear'))
  p.add_argument('--center', action='store_true')
  p.add_argument('--steps', type=int, default=600)
  p.add_argument('--width', type=int, default=64)
  p.add_argument('--depth', type=int, default=2)
  p.add_argument('--patch', type=int, default=4)
  p.add_argument('--tokens', type=int, default=16)
  p.add_argument('--codebook', type=int, default=256)
  p.add_argument('--token_dim', type=int, default=12)
  p.add_argument('--levels', type=int, default=4, help='fsq: values per dimension')
  p.add_argument('--lr', type=float, default=1e-3)
  p.add_argument('--pos_std', type=float, default=0.0,
                 help='>0: init std of every position embedding, mask and latent token')
  p.add_argument('--spatial_mix', action='store_true',
                 help="the ViTs' learned spatial mixing (model.spatial_mix)")
  p.add_argument('--zero_head', action='store_true',
                 help="the ViT decoder's pixel head starts at zero (model.zero_pixel_head)")
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--train_photos', type=int, default=0,
                 help='>0: train on the tiles of only this many of the 20 train photographs')
  p.add_argument('--eval_images', type=int, default=1500)
  p.add_argument('--out', default='benchmarks/rgb_diagnosis.jsonl')
  a = p.parse_args()
  if a.pos_std > 0:
    vit.posemb_init = lambda *names: nn.with_logical_partitioning(
        nn.initializers.normal(a.pos_std), names)
  c = titok_fmnist.get_config()
  c.data.image_size, c.data.channels = 32, 3
  c.model.patch_size, c.model.num_global_tokens = a.patch, a.tokens
  c.model.codebook_size, c.model.token_dim = a.codebook, a.token_dim
  c.model.spatial_mix = a.spatial_mix
  c.model.zero_pixel_head = a.zero_head
  titok_fmnist.common.set_vit(c.model.encoder, c.model.decoder, width=a.width, depth=a.depth,
                              num_heads=2)
  model = Autoencoder(c, a)
  x_train, x_test = load_split('train', a.train_photos), load_split('test')[:a.eval_images]
  params = model.init(jax.random.key(a.seed), jnp.asarray(x_train[:2]))['params']
  o = c.optim
  schedule = optax.warmup_cosine_decay_schedule(0.0, a.lr, o.warmup_steps, a.steps,
                                                a.lr * o.end_lr_fraction)
  tx = optax.chain(optax.clip_by_global_norm(o.grad_clip_norm),
                   optax.adamw(schedule, o.b1, o.b2, weight_decay=o.weight_decay))
  opt_state = tx.init(params)

  def forward(params, x):
    mean = jnp.mean(x, axis=(1, 2), keepdims=True) if a.center else 0.0
    recon, vq_loss = model.apply({'params': params}, x - mean)
    return recon + mean, vq_loss

  def loss_fn(params, x):
    recon, vq_loss = forward(params, x)
    return jnp.mean(jnp.abs(recon - x)) + jnp.mean(jnp.square(recon - x)) + vq_loss

  @jax.jit
  def train_step(params, opt_state, x):
    grads = jax.grad(loss_fn)(params, x)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  @jax.jit
  def psnr_Bx2(params, x):
    """[per-tile PSNR, per-tile PSNR of the mean colour alone (colour fidelity)]."""
    recon01, x01 = jnp.clip((forward(params, x)[0] + 1) / 2, 0, 1), (x + 1) / 2
    colour_err = jnp.mean(recon01, axis=(1, 2)) - jnp.mean(x01, axis=(1, 2))
    return jnp.stack([-10 * jnp.log10(jnp.mean(jnp.square(recon01 - x01), axis=(1, 2, 3))),
                      -10 * jnp.log10(jnp.mean(jnp.square(colour_err), axis=-1) + 1e-10)], -1)

  rng = np.random.default_rng(a.seed)
  start = time.time()
  for _ in range(a.steps):
    params, opt_state = train_step(params, opt_state,
                                   jnp.asarray(x_train[rng.integers(0, len(x_train), 64)]))
  scores = np.concatenate([np.asarray(psnr_Bx2(params, jnp.asarray(x_test[i:i + 500])))
                           for i in range(0, len(x_test), 500)])
  psnr, colour_psnr = (float(v) for v in scores.mean(axis=0))
  commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                          text=True, check=False).stdout.strip()
  row = {'benchmark': 'rgb_diagnosis', 'name': a.name, 'test_psnr': round(psnr, 2),
         'test_colour_psnr': round(colour_psnr, 2), 'train_tiles': len(x_train),
         'seconds': round(time.time() - start, 1), 'options': vars(a), 'commit': commit,
         'cpu_flags': records.cpu_flags(), 'command': ' '.join(sys.argv)}
  print(json.dumps(row))
  with open(a.out, 'a') as f:
    f.write(json.dumps(row) + '\n')


if __name__ == '__main__':
  main()

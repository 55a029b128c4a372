"""Are a trained FSQ tokenizer's tokens collapsed? Encoder statistics on held-out tiles.

  python benchmarks/token_collapse.py --workdir workdirs/titok_photos_s1 --steps 1000,1500

Restores the run's params at each step, encodes the first --num_images tiles of the run's
eval split and prints, per step: the mean |z| of the encoder's outputs before FSQ's tanh,
the share of those values where tanh is saturated (derivative below 0.05, so the
straight-through gradient is < 5% of its size: the encoder can no longer move them), and
how many distinct ids each token position takes over the tiles (min / median / max).
A collapsed tokenizer (docs/natural_rgb.md: the mean-colour plateau) shows |z| of ~4, most
values saturated and 2-3 ids per position; a healthy one ~1, a few percent, and dozens.
TiTok-family runs with model.quantizer='fsq' (the *_photos configs).
"""
import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from sbt_jax import runs  # pylint: disable=g-import-not-at-top,wrong-import-position
from sbt_jax.data import pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from sbt_jax.models import colour  # pylint: disable=g-import-not-at-top,wrong-import-position


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--workdir', required=True)
  p.add_argument('--steps', default='-1', help='comma-separated checkpoint steps; -1: latest')
  p.add_argument('--num_images', type=int, default=512)
  a = p.parse_args()
  for step in [int(s) for s in a.steps.split(',')]:
    r = runs.restore_tokenizer(a.workdir, runs.local_mesh(), None if step < 0 else step)
    if r.config.model.quantizer != 'fsq':
      sys.exit(f'{a.workdir}: model.quantizer={r.config.model.quantizer!r}; this reads FSQ runs')
    x = eval_images(r.config, a.num_images)

    def encode(params, x_BxHxWxC):
      centred, _ = colour.split_image(x_BxHxWxC, r.model.geometry)
      z_BxGxT = r.model.apply({'params': params}, centred,
                              method=lambda m, v: m.encoder(v)[0])
      _, aux = r.model.apply({'params': params}, x_BxHxWxC, method='encode')
      return z_BxGxT, aux['ids']

    z_BxGxT, ids_BxG = (np.asarray(v) for v in jax.jit(encode)(r.params, jnp.asarray(x)))
    distinct_G = np.array([len(np.unique(ids_BxG[:, g])) for g in range(ids_BxG.shape[1])])
    print(json.dumps({
        'workdir': a.workdir, 'step': r.step, 'images': len(x),
        'mean_abs_z': round(float(np.abs(z_BxGxT).mean()), 3),
        'saturated': round(float(np.mean(1 - np.tanh(z_BxGxT) ** 2 < 0.05)), 3),
        'distinct_ids_per_position': [int(distinct_G.min()), int(np.median(distinct_G)),
                                      int(distinct_G.max())]}))


def eval_images(config, num_images):
  """The first num_images images of the run's eval split, preprocessed as in training."""
  d = config.data
  source = pipeline.make_source(d, d.eval_split)
  return np.stack([pipeline.preprocess(source[i], d.image_size, d.channels)['image']
                   for i in range(min(num_images, len(source)))])


if __name__ == '__main__':
  main()

"""A trained generator and its frozen tokenizer (+ aligner), restored for sampling images.

  gen = RestoredGenerator('workdirs/maskgit_fmnist')
  images_BxHxWxC, ids_BxG = gen.sample(labels_B, seed=0)   # images in [-1, 1]

The tokenizer is the one the generator was trained on (workdir and step from the run's
tokenizer.json); `aligner_workdir` swaps in another aligner without touching the generator.
Sampling settings come from the run's config.generator.sampling unless overridden.
"""
import jax
import jax.numpy as jnp
import numpy as np

from sbt_jax import paths
from sbt_jax import runs
from sbt_jax import sharding
from sbt_jax.evaluators import image_grid
from sbt_jax.sampling import generate


class RestoredGenerator:
  """Generator params, tokenizer adapter and params on the local devices."""

  def __init__(self, workdir: str, *, step: int | None = None,
               aligner_workdir: str | None = None, tokenizer_workdir: str | None = None,
               tokenizer_step: int | None = None, sampling_overrides: dict | None = None):
    self.mesh = runs.local_mesh()
    run = runs.restore_generator(workdir, self.mesh, step)
    config = run.config
    config.generator.tokenizer_workdir = tokenizer_workdir or run.tokenizer_workdir
    config.generator.tokenizer_step = (run.tokenizer_step if tokenizer_step is None
                                       else tokenizer_step)
    for key, value in (sampling_overrides or {}).items():
      if value is not None:
        config.generator.sampling[key] = value
    self.config, self.model, self.params, self.step = config, run.model, run.params, run.step
    # With aligner_workdir the adapter is built around that aligner's size.
    self.adapter, tok_params, self.tokenizer_step = runs.restore_global_tokenizer(
        config.generator.tokenizer_workdir, self.mesh, config.generator.tokenizer_step,
        aligner_workdir=aligner_workdir, rate=config.generator.tatok_rate)
    self.tokenizer_params = jax.device_put(tok_params, sharding.replicated(self.mesh))
    n_dev = len(jax.local_devices())
    size = config.generator.sampling.batch_size
    self.batch_size = max(n_dev, size - size % n_dev)
    sample_ids = generate.ids_sampler(self.model, config.generator)

    def sample_fn(params, tok_params, labels_B, rng):
      ids_BxG = sample_ids(params, labels_B, rng)
      images = self.adapter.decode_global_ids(tok_params, ids_BxG)
      return jnp.clip(images, -1.0, 1.0), ids_BxG
    self._sample = jax.jit(sample_fn)

  @property
  def num_classes(self) -> int:
    return self.config.generator.num_classes

  def _sample_batch(self, labels_B, rng):
    """One jitted call on labels_B padded to a multiple of the device count."""
    n = len(labels_B)
    pad = -n % len(jax.local_devices())
    labels = np.concatenate([labels_B, np.repeat(labels_B[-1:], pad)])
    images, ids = self._sample(self.params, self.tokenizer_params,
                               sharding.global_batch(labels, self.mesh), rng)
    return np.asarray(images)[:n], np.asarray(ids)[:n]

  def sample(self, labels_N, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 [N, H, W, C] in [-1, 1], ids int32 [N, G]) for labels_N.

    Batch i of sampling.batch_size uses the key fold_in(key(seed), i); results depend on
    seed and batch size.
    """
    labels_N = np.asarray(labels_N, np.int32)
    if labels_N.ndim != 1 or labels_N.min(initial=0) < 0 or (
        labels_N.max(initial=0) >= self.num_classes):
      raise ValueError(f'labels must be a 1-D array of classes in [0, {self.num_classes})')
    images, ids = [], []
    key = jax.random.key(seed)
    for i, start in enumerate(range(0, len(labels_N), self.batch_size)):
      out = self._sample_batch(labels_N[start:start + self.batch_size],
                               jax.random.fold_in(key, i))
      images.append(out[0])
      ids.append(out[1])
    return np.concatenate(images), np.concatenate(ids).astype(np.int32)

  def sample_fn(self):
    """sample_fn(labels_B, rng) -> images [B, H, W, C] in [-1, 1], the form
    sbt_jax.evaluate takes for generation metrics, e.g. gFD-VGG of 10,000 samples:

      evaluate.evaluate(tokenizer_workdir, metrics=['fd_vgg'], reconstruct=False,
                        sample_fn=RestoredGenerator(gen_workdir).sample_fn(),
                        num_samples=10_000)
    """
    return lambda labels_B, rng: self._sample_batch(np.asarray(labels_B, np.int32), rng)[0]


def write_samples(out_dir: str, images, labels, ids, num_classes: int) -> dict:
  """samples.npz + grid.png under out_dir; returns their paths."""
  npz = paths.join(out_dir, 'samples.npz')
  paths.save_npz(npz, images=image_grid.to_uint8(images), labels=labels, ids=ids)
  per_row = min(num_classes, len(images))
  rows = [images[i:i + per_row] for i in range(0, min(len(images), 10 * per_row), per_row)
          if i + per_row <= len(images)]
  scale = 2 if images.shape[1] < 64 else 1
  grid = image_grid.save_grid(paths.join(out_dir, 'grid.png'), rows, scale=scale)
  return {'npz': npz, 'grid': grid}

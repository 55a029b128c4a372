"""One entry to sample global ids from a generator config, and class-balanced labels."""
import functools

import ml_collections
import numpy as np

from sbt_jax.sampling import autoregressive
from sbt_jax.sampling import maskgit


def class_balanced_labels(num_samples: int, num_classes: int) -> np.ndarray:
  """0, 1, ..., C-1, 0, 1, ...: every class count within one of num_samples / C."""
  return (np.arange(num_samples) % num_classes).astype(np.int32)


def ids_sampler(model, g: ml_collections.ConfigDict):
  """Pure, jittable sample_ids(params, labels_B, rng) -> ids [B, G] for config.generator."""
  s = g.sampling
  guidance = dict(temperature=s.temperature, guidance_scale=s.guidance_scale,
                  guidance_schedule=s.guidance_schedule, guidance_power=s.guidance_power)
  if g.type == 'ar':
    return functools.partial(autoregressive.sample, model=model, **guidance)
  if g.type == 'maskgit':
    extra = ({'procedure': 'reference',
              'softmax_temperature_annealing': s.softmax_temperature_annealing}
             if s.procedure == 'reference' else {})
    fn = functools.partial(maskgit.sample, model=model, num_steps=s.num_steps,
                           choice_temperature=s.choice_temperature,
                           mask_schedule=g.mask_schedule, **guidance, **extra)
    return lambda params, labels_B, rng: fn(params, labels_B, rng).ids_BxG
  raise ValueError(f"generator.type={g.type!r}; expected 'maskgit' or 'ar'")

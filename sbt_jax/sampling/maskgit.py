"""MaskGIT parallel decoding as one jittable function (a state dataclass and a lax loop).

Two procedures (generator.sampling.procedure): ours ('sbt', below) and bytedance/
1d-tokenizer's ('reference': make_reference_step, its ImageBert.generate step by step).

Start from G mask ids. Each of num_steps steps: run the transformer (with classifier-free
guidance: conditional and null-class halves in one batch), sample an id for every position
from softmax(logits / temperature), keep the ids already fixed, and re-mask the
floor(G * mask_ratio((step + 1) / num_steps)) least confident new ids, where confidence is
log p(sampled id) + choice_temperature * (1 - (step + 1) / num_steps) * Gumbel noise. At least
one id is fixed per step and none stays masked after the last step.
"""
import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np

from sbt_jax.models import generator as generator_lib
from sbt_jax.sampling import schedules


@flax.struct.dataclass
class MaskGitState:
  step: jax.Array          # int32 scalar: steps done
  ids_BxG: jax.Array       # current ids; the mask id where not yet fixed
  rng: jax.Array
  # The guided logits of the first step (kept only when asked: B x G x V floats).
  first_logits_BxGxV: Any = None


def _cond_logits(params, ids_BxG, labels_B, model):
  """The transformer's logits [B, G, V] for ids given labels."""
  seq_BxS = generator_lib.maskgit_inputs(ids_BxG, labels_B, model.vocab_size)
  return model.apply({'params': params}, seq_BxS)[:, 1:]


def _guided(params, ids_BxG, labels_B, model, combine, unguided=False):
  """combine(cond, uncond) of one pass over the conditional and the null-class inputs (a
  batch of 2B); where the traced bool `unguided` holds, the conditional logits of a pass of
  B instead (the step's guidance is off: half the work, the same logits)."""
  def both(_):
    null_B = jnp.full_like(labels_B, model.num_classes)
    logits_2BxGxV = _cond_logits(params, jnp.concatenate([ids_BxG, ids_BxG]),
                                 jnp.concatenate([labels_B, null_B]), model)
    return combine(*jnp.split(logits_2BxGxV, 2))
  if unguided is False:
    return both(None)
  return jax.lax.cond(unguided, lambda _: _cond_logits(params, ids_BxG, labels_B, model),
                      both, None)


def step_logits(params, ids_BxG, labels_B, step, *, model, num_steps, guidance_scale,
                guidance_schedule='constant', guidance_power=2.75):
  """Logits [B, G, V] for the current ids; guided when guidance_scale != 0 (a step whose
  scale is 0, e.g. the first of 'linear' and 'power-cosine', runs the conditional pass
  alone)."""
  if guidance_scale == 0:
    return _cond_logits(params, ids_BxG, labels_B, model)
  scale = guidance_scale * schedules.guidance_weight(step / num_steps, guidance_schedule,
                                                     guidance_power)
  return _guided(params, ids_BxG, labels_B, model,
                 lambda cond, uncond: schedules.guided_logits(cond, uncond, scale),
                 unguided=scale == 0)


def init_state(batch: int, num_tokens: int, vocab_size: int, rng,
               keep_first_logits: bool = False) -> MaskGitState:
  """Every position masked."""
  return MaskGitState(
      step=jnp.zeros((), jnp.int32),
      ids_BxG=jnp.full((batch, num_tokens), generator_lib.mask_id(vocab_size), jnp.int32),
      rng=rng, first_logits_BxGxV=(jnp.zeros((batch, num_tokens, vocab_size), jnp.float32)
                                   if keep_first_logits else None))


def _next_state(state, rng, logits_BxGxV, sampled_BxG, remask_BxG, mask) -> MaskGitState:
  """The state after a step: sampled ids, the mask id where re-masked (first-step logits
  kept when asked)."""
  first = state.first_logits_BxGxV
  if first is not None:
    first = jnp.where(state.step == 0, logits_BxGxV, first)
  return MaskGitState(step=state.step + 1, ids_BxG=jnp.where(remask_BxG, mask, sampled_BxG),
                      rng=rng, first_logits_BxGxV=first)


def make_step(params, labels_B, *, model, num_steps: int, temperature: float = 1.0,
              choice_temperature: float = 4.5, guidance_scale: float = 0.0,
              guidance_schedule: str = 'constant', guidance_power: float = 2.75,
              mask_schedule: str = 'arccos'):
  """The loop body: step(state) -> state after decoding step state.step."""
  g, v = model.num_tokens, model.vocab_size
  mask = generator_lib.mask_id(v)

  def step_fn(state):
    step = state.step
    rng, sample_rng, choice_rng = jax.random.split(state.rng, 3)
    logits_BxGxV = step_logits(params, state.ids_BxG, labels_B, step, model=model,
                               num_steps=num_steps, guidance_scale=guidance_scale,
                               guidance_schedule=guidance_schedule,
                               guidance_power=guidance_power)
    logp_BxGxV = jax.nn.log_softmax(logits_BxGxV / temperature, axis=-1)
    sampled_BxG = jax.random.categorical(sample_rng, logp_BxGxV)
    unknown_BxG = state.ids_BxG == mask
    sampled_BxG = jnp.where(unknown_BxG, sampled_BxG, state.ids_BxG)
    ratio = (step + 1) / num_steps
    # floor(G r), with slack for float32 rounding (arccos(1/2) / (pi/2) * 6 = 3.9999995).
    num_masked = jnp.floor(g * schedules.mask_ratio(ratio, mask_schedule) + 1e-4)
    num_masked = num_masked.astype(jnp.int32)
    num_masked_B = jnp.clip(num_masked, 0, jnp.maximum(jnp.sum(unknown_BxG, axis=1) - 1, 0))
    num_masked_B = jnp.where(step >= num_steps - 1, 0, num_masked_B)
    logp_sampled_BxG = jnp.take_along_axis(logp_BxGxV, sampled_BxG[..., None], -1)[..., 0]
    gumbel_BxG = jax.random.gumbel(choice_rng, sampled_BxG.shape)
    confidence_BxG = logp_sampled_BxG + choice_temperature * (1.0 - ratio) * gumbel_BxG
    confidence_BxG = jnp.where(unknown_BxG, confidence_BxG, jnp.inf)
    cutoff_B = jnp.take_along_axis(jnp.sort(confidence_BxG, axis=1), num_masked_B[:, None],
                                   axis=1)
    remask_BxG = confidence_BxG < cutoff_B
    return _next_state(state, rng, logits_BxGxV, sampled_BxG, remask_BxG, mask)

  return step_fn


def reference_mask_lengths(num_tokens: int, num_steps: int) -> np.ndarray:
  """floor(G arccos(r) / (pi / 2)), r = (step + 1) / num_steps, in float64 as the reference
  computes it (numpy on the host)."""
  ratio = np.arange(1, num_steps + 1, dtype=np.float64) / num_steps
  return np.floor(num_tokens * (np.arccos(ratio) / (math.pi * 0.5))).astype(np.int32)


def reference_logits(params, ids_BxG, labels_B, step, *, model, num_steps, guidance_scale,
                     guidance_schedule, guidance_power, softmax_temperature_annealing):
  """ImageBert.generate's logits at `step`: 'constant' cond + s (cond - uncond); 'linear'
  the same with s = guidance_scale * step / num_steps; 'power-cosine'
  uncond + c (cond - uncond), c = (guidance_scale - 1) w + 1, w = (1 - cos(pi (step /
  num_steps)^power)) / 2. Where the scale (c) is 0 (always for guidance_scale 0; the first
  linear step) the conditional logits alone, from a pass of B, as the reference does."""
  if guidance_scale == 0 and guidance_schedule != 'power-cosine':
    logits_BxGxV = _cond_logits(params, ids_BxG, labels_B, model)
  elif guidance_schedule == 'power-cosine':
    w = (1 - jnp.cos(((step / num_steps) ** guidance_power) * jnp.pi)) * 0.5
    c = (guidance_scale - 1) * w + 1
    logits_BxGxV = _guided(params, ids_BxG, labels_B, model,
                           lambda cond, uncond: uncond + (cond - uncond) * c, unguided=c == 0)
  else:
    scale = guidance_scale * (step / num_steps if guidance_schedule == 'linear' else 1.0)
    logits_BxGxV = _guided(params, ids_BxG, labels_B, model,
                           lambda cond, uncond: cond + (cond - uncond) * scale,
                           unguided=scale == 0)
  if softmax_temperature_annealing:
    logits_BxGxV = logits_BxGxV / (0.5 + 0.8 * (1 - (step + 1) / num_steps))
  return logits_BxGxV


def make_reference_step(params, labels_B, *, model, num_steps: int,
                        choice_temperature: float = 4.5, guidance_scale: float = 0.0,
                        guidance_schedule: str = 'constant', guidance_power: float = 3.0,
                        softmax_temperature_annealing: bool = False, temperature: float = 1.0,
                        mask_schedule: str = 'arccos'):
  """The loop body of bytedance/1d-tokenizer's ImageBert.generate: with t =
  choice_temperature * (1 - (step + 1) / num_steps), ids = argmax(logits + t Gumbel) where
  masked, confidence = their raw logit + t (new) Gumbel (+inf where fixed), the mask_len
  lowest-confidence positions re-masked (mask_len = floor(G arccos(r) / (pi / 2)) clipped to
  [1, masked - 1]); the last step keeps every sampled id. Its Gumbel noise comes from JAX's
  generator, so sampled ids equal the reference's only without noise (choice_temperature
  0); the logits equal its logits."""
  if temperature != 1.0 or mask_schedule != 'arccos':
    raise ValueError("procedure='reference' has no softmax temperature and an arccos mask "
                     f'schedule; got temperature={temperature}, mask_schedule={mask_schedule!r}')
  g, v = model.num_tokens, model.vocab_size
  mask = generator_lib.mask_id(v)
  mask_len_T = jnp.asarray(reference_mask_lengths(g, num_steps))

  def step_fn(state):
    step = state.step
    rng, sample_rng, choice_rng = jax.random.split(state.rng, 3)
    logits_BxGxV = reference_logits(
        params, state.ids_BxG, labels_B, step, model=model, num_steps=num_steps,
        guidance_scale=guidance_scale, guidance_schedule=guidance_schedule,
        guidance_power=guidance_power,
        softmax_temperature_annealing=softmax_temperature_annealing)
    t = choice_temperature * (1.0 - (step + 1) / num_steps)
    unknown_BxG = state.ids_BxG == mask
    noisy_BxGxV = logits_BxGxV + t * _gumbel(sample_rng, logits_BxGxV.shape)
    sampled_BxG = jnp.argmax(noisy_BxGxV, axis=-1)
    sampled_logit_BxG = jnp.take_along_axis(logits_BxGxV, sampled_BxG[..., None], -1)[..., 0]
    sampled_BxG = jnp.where(unknown_BxG, sampled_BxG, state.ids_BxG)
    sampled_logit_BxG = jnp.where(unknown_BxG, sampled_logit_BxG, jnp.inf)
    mask_len_B = jnp.maximum(1, jnp.minimum(jnp.sum(unknown_BxG, axis=1) - 1,
                                            mask_len_T[step]))
    confidence_BxG = sampled_logit_BxG + t * _gumbel(choice_rng, sampled_logit_BxG.shape)
    cutoff_B = jnp.take_along_axis(jnp.sort(confidence_BxG, axis=1), mask_len_B[:, None] - 1,
                                   axis=1)
    remask_BxG = (confidence_BxG <= cutoff_B) & (step < num_steps - 1)
    return _next_state(state, rng, logits_BxGxV, sampled_BxG, remask_BxG, mask)

  return step_fn


def _gumbel(rng, shape):
  """-log(-log(u)), u ~ U[0, 1), logs clamped at 1e-20 (the reference's gumbel_noise)."""
  u = jax.random.uniform(rng, shape)
  return -jnp.log(jnp.maximum(-jnp.log(jnp.maximum(u, 1e-20)), 1e-20))


def sample(params, labels_B, rng, *, model, num_steps: int, keep_first_logits: bool = False,
           procedure: str = 'sbt', **options) -> MaskGitState:
  """Decodes [B, G] ids for labels_B in num_steps steps (one lax loop); the final state.

  options: temperature, choice_temperature, guidance_scale, guidance_schedule,
  guidance_power, mask_schedule (see make_step); procedure='reference':
  make_reference_step's (softmax_temperature_annealing too).
  """
  make = make_reference_step if procedure == 'reference' else make_step
  step_fn = make(params, labels_B, model=model, num_steps=num_steps, **options)
  init = init_state(labels_B.shape[0], model.num_tokens, model.vocab_size, rng,
                    keep_first_logits)
  return jax.lax.fori_loop(0, num_steps, lambda _, state: step_fn(state), init)

"""Autoregressive sampling of G ids: with a KV cache (G single-token steps) and uncached.

Both draw id i from softmax(guided logits / temperature) with the key fold_in(rng, i), so
for the same seed they return the same ids (the uncached one is the test reference: it
reruns the whole causal transformer every step). Guidance uses t = i / G in the schedule.
"""
import jax
import jax.numpy as jnp

from sbt_jax.models import generator as generator_lib
from sbt_jax.sampling import schedules


def _with_null(x_B, model, guided):
  if not guided:
    return x_B
  return jnp.concatenate([x_B, jnp.full_like(x_B, model.num_classes)])


def _twice(x_B, guided):
  return jnp.concatenate([x_B, x_B]) if guided else x_B


def _guide(logits_bxV, i, *, guided, guidance_scale, guidance_schedule, guidance_power,
           num_tokens):
  if not guided:
    return logits_bxV
  cond_BxV, uncond_BxV = jnp.split(logits_bxV, 2)
  scale = guidance_scale * schedules.guidance_weight(i / num_tokens, guidance_schedule,
                                                     guidance_power)
  return schedules.guided_logits(cond_BxV, uncond_BxV, scale)


def init_cache(model, batch_size: int):
  """Zero KV cache for `batch_size` sequences of the model's full length."""
  decoder = model.clone(decode=True)
  seq = jnp.zeros((batch_size, model.num_tokens), jnp.int32)
  shapes = jax.eval_shape(lambda s: decoder.init(jax.random.key(0), s), seq)['cache']
  return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)


def sample(params, labels_B, rng, *, model, temperature: float = 1.0,
           guidance_scale: float = 0.0, guidance_schedule: str = 'constant',
           guidance_power: float = 2.75):
  """KV-cache sampling: [B, G] ids, one transformer call on one token per id."""
  b, g = labels_B.shape[0], model.num_tokens
  guided = guidance_scale != 0
  decoder = model.clone(decode=True)
  guide = dict(guided=guided, guidance_scale=guidance_scale,
               guidance_schedule=guidance_schedule, guidance_power=guidance_power,
               num_tokens=g)
  classes_b = generator_lib.class_tokens(_with_null(labels_B, model, guided),
                                         model.vocab_size)

  def body(i, carry):
    cache, token_b, ids_BxG = carry
    logits_bx1xV, updated = decoder.apply({'params': params, 'cache': cache},
                                          token_b[:, None], position=i, mutable=['cache'])
    logits_BxV = _guide(logits_bx1xV[:, 0], i, **guide)
    id_B = jax.random.categorical(jax.random.fold_in(rng, i), logits_BxV / temperature)
    ids_BxG = ids_BxG.at[:, i].set(id_B)
    return updated['cache'], _twice(id_B, guided), ids_BxG

  carry = (init_cache(model, classes_b.shape[0]), classes_b, jnp.zeros((b, g), jnp.int32))
  return jax.lax.fori_loop(0, g, body, carry)[2]


def sample_uncached(params, labels_B, rng, *, model, temperature: float = 1.0,
                    guidance_scale: float = 0.0, guidance_schedule: str = 'constant',
                    guidance_power: float = 2.75):
  """The reference: step i reruns the causal transformer on [class ; ids[:-1]]."""
  b, g = labels_B.shape[0], model.num_tokens
  guided = guidance_scale != 0
  guide = dict(guided=guided, guidance_scale=guidance_scale,
               guidance_schedule=guidance_schedule, guidance_power=guidance_power,
               num_tokens=g)
  labels_b = _with_null(labels_B, model, guided)

  def body(i, ids_BxG):
    seq_bxG = generator_lib.ar_inputs(_twice(ids_BxG, guided), labels_b,
                                      model.vocab_size)
    logits_bxV = jax.lax.dynamic_index_in_dim(model.apply({'params': params}, seq_bxG), i,
                                              axis=1, keepdims=False)
    logits_BxV = _guide(logits_bxV, i, **guide)
    id_B = jax.random.categorical(jax.random.fold_in(rng, i), logits_BxV / temperature)
    return ids_BxG.at[:, i].set(id_B)

  return jax.lax.fori_loop(0, g, body, jnp.zeros((b, g), jnp.int32))

"""The tokenizer stage's objective: reconstruction + quantizer + the family's terms.

  loss = recon(l1, l2, lpips) + quantizer_weight * sum of VQ terms
         + sum over spec.loss_terms(config) of weight * term
         + for each spec.extra_reconstructions: weight * recon of that output
"""
import jax.numpy as jnp

from sbt_jax.losses import quantizer as quantizer_loss_lib
from sbt_jax.losses import reconstruction
from sbt_jax.losses import terms as terms_lib
from sbt_jax.models import quantizer as quantizer_model


def tokenizer_objective(recon_BxHxWxC, aux, x_BxHxWxC, frozen, *, config, spec, dtype):
  """(scalar loss, metrics) of one batch; aux is the model's output dict."""
  w = config.loss
  books = spec.codebooks(config)
  loss, metrics = reconstruction.reconstruction_loss(recon_BxHxWxC, x_BxHxWxC, frozen, w,
                                                     dtype)
  q_loss, commit = quantizer_loss_lib.quantizer_loss(aux, books, config.model.commitment_cost)
  loss = loss + w.quantizer_weight * q_loss
  metrics.update(quantizer_loss=q_loss, commit_loss=commit)
  for name, weight in spec.loss_terms(config):
    value = terms_lib.TERMS[name](aux)
    loss = loss + w[weight] * value
    metrics[name] = value
  for name, (needs, fn) in terms_lib.DERIVED_METRICS.items():
    if all(k in aux for k in needs):
      metrics[name] = fn(aux)
  metrics.update({k: jnp.mean(aux[k]) for k in spec.logged_metrics if k in aux})
  for key, weight, prefix in spec.extra_reconstructions:
    if key in aux:
      extra, extra_metrics = reconstruction.reconstruction_loss(aux[key], x_BxHxWxC, frozen,
                                                                w, dtype, prefix=prefix)
      loss = loss + w[weight] * extra
      metrics.update(extra_metrics)
  for book in books:
    stats = quantizer_model.codebook_stats(aux[book.ids_key], book.size)
    metrics.update({f'{book.prefix}{k}': v for k, v in stats.items()})
  metrics['loss'] = loss
  return loss, metrics

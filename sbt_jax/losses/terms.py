"""Named terms computed from a tokenizer's outputs; a family's spec lists the ones it
trains with (spec.loss_terms: name -> config.loss weight field)."""
import jax
import jax.numpy as jnp

from sbt_jax.models.quantizer import l2_normalize


def alignment_loss(f_hat_BxNxF, f_BxNxF):
  """||norm(f_hat) - sg(norm(f))||^2 summed over features, mean over patches and images."""
  diff = l2_normalize(f_hat_BxNxF) - jax.lax.stop_gradient(l2_normalize(f_BxNxF))
  return jnp.mean(jnp.sum(jnp.square(diff), -1))


def token_cross_entropy(logits_BxLxK, ids_BxL):
  """Mean cross-entropy (nats) of logits against sg(ids)."""
  ids_BxL = jax.lax.stop_gradient(ids_BxL)
  ce = -jnp.take_along_axis(jax.nn.log_softmax(logits_BxLxK), ids_BxL[..., None], -1)[..., 0]
  return jnp.mean(ce)


def token_accuracy(logits_BxLxK, ids_BxL):
  return jnp.mean((jnp.argmax(logits_BxLxK, -1) == ids_BxL).astype(jnp.float32))


# name -> fn(model outputs): the terms specs may list in loss_terms.
TERMS = {
    'align_loss': lambda aux: alignment_loss(aux['f_hat'], aux['f']),
    'local_ce': lambda aux: token_cross_entropy(aux['local_logits'], aux['local_ids']),
    'patch_ce': lambda aux: token_cross_entropy(aux['patch_logits'], aux['patch_ids']),
    'ot_cost': lambda aux: aux['ot_cost'],
    'kl': lambda aux: aux['kl'],  # models/vae.py
}
# name -> fn(model outputs): metrics derived from outputs, logged when their inputs exist.
DERIVED_METRICS = {
    'local_accuracy': (('local_logits', 'local_ids'),
                       lambda aux: token_accuracy(aux['local_logits'], aux['local_ids'])),
}

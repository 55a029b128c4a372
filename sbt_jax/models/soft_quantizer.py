"""SoftVQ-style quantizer: a softmax over cosine similarities to an l2-normalised codebook.

  p = softmax(<norm(z), norm(C_k)> / temperature),  q_soft = p @ norm(C),  id = argmax p.

With `straight_through` (the default) the forward value is the hard code norm(C_id) and the
gradient is that of q_soft, so decoding stored ids sees exactly what training saw; without
it the decoder trains on q_soft (closer to SoftVQ-VAE) and hard-id decoding is an
approximation. Same interface and aux keys as quantizer.VectorQuantizer, so dead-code
restarts and usage statistics treat both alike. Always float32.
"""
import jax
import jax.numpy as jnp

from sbt_jax.models import quantizer as quantizer_lib
from sbt_jax.models.quantizer import l2_normalize


class SoftQuantizer(quantizer_lib.VectorQuantizer):
  """Codebook, lookup and params as VectorQuantizer; a softmax assignment in __call__."""
  temperature: float = 0.1
  straight_through: bool = True

  def __call__(self, z_BxGxT):
    z_BxGxT = l2_normalize(z_BxGxT.astype(jnp.float32))
    codes_KxT = self.normalized_codebook()
    logits_BxGxK = jnp.einsum('bgt,kt->bgk', z_BxGxT, codes_KxT) / self.temperature
    p_BxGxK = jax.nn.softmax(logits_BxGxK, axis=-1)
    q_soft_BxGxT = jnp.einsum('bgk,kt->bgt', p_BxGxK, codes_KxT)
    ids_BxG = jnp.argmax(logits_BxGxK, axis=-1)
    q_hard_BxGxT = jnp.take(codes_KxT, ids_BxG, axis=0)
    if self.straight_through:
      q_BxGxT = q_soft_BxGxT + jax.lax.stop_gradient(q_hard_BxGxT - q_soft_BxGxT)
    else:
      q_BxGxT = q_soft_BxGxT
    # Pull codes and encoder outputs together as in VQ: keeps the argmax id meaningful.
    codebook_loss, commit_loss = quantizer_lib.vq_terms(z_BxGxT, q_hard_BxGxT)
    entropy = -jnp.mean(jnp.sum(p_BxGxK * jax.nn.log_softmax(logits_BxGxK, -1), axis=-1))
    aux = {
        'codebook_loss': codebook_loss,
        'commit_loss': commit_loss,
        'soft_assignment_entropy': entropy,  # nats; 0 = one-hot, log K = uniform
        'ids': ids_BxG,
        'z': z_BxGxT,
    }
    return q_BxGxT, aux

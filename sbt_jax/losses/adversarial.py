"""Adversarial terms of the tokenizer recipe (issue 18), as in bytedance/1d-tokenizer's
ReconstructionLoss_Stage2 (after taming-transformers):

  discriminator: factor * hinge(real, fake) + lecam_weight * LeCam(real, fake, EMAs)
  generator:     factor * weight [* adaptive] * -mean(D(reconstruction))

`factor` is 0 before `start_step` and the configured factor from it on, so both terms (and
their gradients) are exactly zero until the discriminator starts. LeCam (Tseng et al. 2021)
keeps the mean real / fake logits near the EMAs of the opposite side; the EMAs live in the
train state (`LecamEma`) and are updated from the batch means after each discriminator step.
Logits are any shape (patch maps B x h x w x 1); all means are over every element.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp


def hinge_discriminator_loss(logits_real, logits_fake):
  """0.5 * (mean relu(1 - real) + mean relu(1 + fake))."""
  return 0.5 * (jnp.mean(jax.nn.relu(1.0 - logits_real))
                + jnp.mean(jax.nn.relu(1.0 + logits_fake)))


def generator_adversarial_loss(logits_fake):
  """-mean D(reconstruction): the generator side's term (before factor and weight)."""
  return -jnp.mean(logits_fake)


class LecamEma(NamedTuple):
  """EMAs of the mean real and fake logits (scalars, float32), zero at the start."""
  real: jax.Array
  fake: jax.Array

  @classmethod
  def zeros(cls) -> 'LecamEma':
    return cls(jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))

  def update(self, logits_real, logits_fake, decay: float) -> 'LecamEma':
    """The EMAs after one batch (the batch means enter with weight 1 - decay)."""
    real = jax.lax.stop_gradient(jnp.mean(logits_real))
    fake = jax.lax.stop_gradient(jnp.mean(logits_fake))
    return LecamEma(self.real * decay + real * (1.0 - decay),
                    self.fake * decay + fake * (1.0 - decay))


def lecam_loss(logits_real, logits_fake, ema: LecamEma):
  """relu(mean real - EMA fake)^2 + relu(EMA real - mean fake)^2."""
  return (jnp.square(jax.nn.relu(jnp.mean(logits_real) - ema.fake))
          + jnp.square(jax.nn.relu(ema.real - jnp.mean(logits_fake))))


def adaptive_weight(grad_rec, grad_gen, max_weight: float = 1e4):
  """sg(||grad_rec|| / (||grad_gen|| + 1e-4)) clipped to [0, max_weight]: taming's VQGAN
  balance of the reconstruction and generator gradients (the reference's recipe does not use
  it; config.adversarial.adaptive_weight turns it on). The gradients are taken w.r.t. the
  reconstruction, not the decoder's last-layer weights: the same balance for every family's
  decoder (for a linear last layer the weight gradient is the output gradient times that
  layer's input, common to both terms)."""
  ratio = jnp.sqrt(jnp.sum(jnp.square(grad_rec))) / (jnp.sqrt(jnp.sum(jnp.square(grad_gen)))
                                                     + 1e-4)
  return jax.lax.stop_gradient(jnp.clip(ratio, 0.0, max_weight))


def factor_at(step, start_step: int, factor: float):
  """`factor` from start_step on, exactly 0.0 before (a traced step works)."""
  return jnp.where(jnp.asarray(step) >= start_step, jnp.float32(factor), jnp.float32(0.0))


def discriminator_objective(logits_real, logits_fake, ema: LecamEma, *, step, start_step: int,
                            factor: float, lecam_weight: float):
  """(loss, metrics) of the discriminator step; the caller updates `ema` afterwards, from
  start_step on (the reference updates it only in steps that train the discriminator)."""
  f = factor_at(step, start_step, factor)
  active = factor_at(step, start_step, 1.0)  # LeCam too is exactly 0 before the start
  hinge = hinge_discriminator_loss(logits_real, logits_fake)
  lecam = (active * lecam_weight * lecam_loss(logits_real, logits_fake, ema) if lecam_weight
           else jnp.zeros((), jnp.float32))
  loss = f * hinge + lecam
  metrics = {'disc/loss': loss, 'disc/hinge': hinge, 'disc/lecam': lecam,
             'disc/logits_real': jnp.mean(logits_real),
             'disc/logits_fake': jnp.mean(logits_fake), 'disc/factor': f,
             # The discriminator "wins" a batch when it ranks real above fake on average.
             'disc/wins': (jnp.mean(logits_real) > jnp.mean(logits_fake)).astype(jnp.float32)}
  return loss, metrics

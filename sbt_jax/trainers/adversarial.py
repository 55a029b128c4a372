"""The adversarial recipe in the tokenizer stage: the discriminator's params, own optimizer
and LeCam EMAs, the generator term, and the discriminator's update (issue 18).

The discriminator lives in TrainState.model_state['disc'] = {'params', 'opt_state',
'lecam_real', 'lecam_fake'} (checkpointed and sharded with the rest; a run without it keeps
the checkpoint layout it always had). One train step does, in order:

  1. generator side: the tokenizer's loss gains factor(step) * weight * -mean D(recon), with
     the discriminator's params held fixed (no gradient reaches them); with
     adversarial.adaptive_weight, weight is also scaled by ||d rec / d recon|| /
     ||d gen / d recon|| (losses/adversarial.py: adaptive_weight);
  2. discriminator side: hinge(D(x), D(sg(recon))) * factor(step) + lecam_weight * LeCam,
     a step of its own AdamW; from config.adversarial.start_step on only: before it, its
     params, optimizer state and LeCam EMAs stay bit-identical.

Images reach the discriminator in [0, 1], as in bytedance/1d-tokenizer's recipe.
"""
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sbt_jax.losses import adversarial as adv_loss
from sbt_jax.losses import reconstruction
from sbt_jax.models import discriminator as discriminator_lib
from sbt_jax.trainers import state as state_lib

# TrainState.model_state key of the discriminator's state.
KEY = 'disc'


def _unit(x):
  return (x.astype(jnp.float32) + 1.0) / 2.0


class AdversarialTrainer:
  """What the tokenizer step needs to train against a discriminator (built only when
  config.adversarial.enabled)."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    a = config.adversarial
    d = a.discriminator
    self.discriminator = discriminator_lib.NLayerDiscriminator(
        hidden_channels=d.hidden_channels, num_stages=d.num_stages, blur_taps=d.blur_taps,
        num_groups=d.num_groups, pool_size=d.pool_size)
    self.tx = state_lib.make_optimizer(a.optim, config.train.num_steps)
    self.dtype = jnp.dtype(config.model.compute_dtype)

  def boxed_state(self, rng, images):
    """{'params', 'opt_state', 'lecam_real', 'lecam_fake'} with nn.Partitioned params."""
    params = self.discriminator.init(rng, _unit(images))['params']
    ema = adv_loss.LecamEma.zeros()
    return {'params': params, 'opt_state': self.tx.init(params), 'lecam_real': ema.real,
            'lecam_fake': ema.fake}

  def logits(self, params, images):
    return self.discriminator.apply({'params': params}, _unit(images))

  def with_generator_term(self, loss_fn, disc_params, step):
    """loss_fn(params, frozen, batch, rng) -> (loss, (metrics, aux)) with aux['recon']
    becomes the same with factor(step) * weight * -mean D(recon) added (times the adaptive
    weight when config.adversarial.adaptive_weight); disc_params get no gradient."""
    a = self.config.adversarial
    weight = adv_loss.factor_at(step, a.start_step, a.factor) * a.weight
    fixed = jax.lax.stop_gradient(disc_params)
    gen_of = lambda recon: adv_loss.generator_adversarial_loss(self.logits(fixed, recon))  # pylint: disable=unnecessary-lambda-assignment

    def total(params, frozen, batch, *rest):
      loss, (metrics, aux) = loss_fn(params, frozen, batch, *rest)
      gen = gen_of(aux['recon'])
      w = weight
      if a.adaptive_weight:
        recon = jax.lax.stop_gradient(aux['recon'])
        rec_of = lambda r: reconstruction.reconstruction_loss(  # pylint: disable=unnecessary-lambda-assignment
            r, batch['image'], frozen, self.config.loss, self.dtype)[0]
        adaptive = adv_loss.adaptive_weight(jax.grad(rec_of)(recon), jax.grad(gen_of)(recon))
        metrics['disc/adaptive_weight'] = adaptive
        w = w * adaptive
      loss = loss + w * gen
      metrics.update(loss=loss, **{'disc/generator_term': gen, 'disc/weight': w})
      return loss, (metrics, aux)

    return total

  def update(self, disc_state, images, recon, step):
    """(disc_state after one discriminator step, metrics); unchanged before start_step."""
    a = self.config.adversarial
    ema = adv_loss.LecamEma(disc_state['lecam_real'], disc_state['lecam_fake'])
    fake = jax.lax.stop_gradient(recon)

    def loss_fn(params):
      real_logits, fake_logits = self.logits(params, images), self.logits(params, fake)
      loss, metrics = adv_loss.discriminator_objective(
          real_logits, fake_logits, ema, step=step, start_step=a.start_step, factor=a.factor,
          lecam_weight=a.lecam_weight)
      return loss, (metrics, real_logits, fake_logits)

    (_, (metrics, real_logits, fake_logits)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(disc_state['params'])
    updates, opt_state = self.tx.update(grads, disc_state['opt_state'], disc_state['params'])
    new_ema = ema.update(real_logits, fake_logits, a.lecam_ema_decay)
    stepped = {'params': optax.apply_updates(disc_state['params'], updates),
               'opt_state': opt_state, 'lecam_real': new_ema.real, 'lecam_fake': new_ema.fake}
    active = jnp.asarray(step) >= a.start_step
    new_state = jax.tree.map(lambda new, old: jnp.where(active, new, old), stepped,
                             disc_state)
    metrics['disc/grad_norm'] = jnp.where(active, optax.tree.norm(grads), 0.0)
    return new_state, metrics


def maybe_create(config: ml_collections.ConfigDict) -> AdversarialTrainer | None:
  return AdversarialTrainer(config) if config.adversarial.enabled else None

"""model.remat_policy and model.scan_layers change memory and compile time, not the math."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import titok_fmnist
from sbt_jax import config_defaults
from sbt_jax import sharding
from sbt_jax.models import registry
from sbt_jax.models import titok
from sbt_jax.models import vit
from sbt_jax.trainers import setup
from sbt_jax.trainers import tokenizer


def _config(remat_policy='none', scan_layers=False):
  c = titok_fmnist.get_config('runlocal')
  c.loss.perceptual_weight = 0.0
  for part in (c.model.encoder, c.model.decoder):
    part.depth = 2
  c.model.remat_policy = remat_policy
  c.model.scan_layers = scan_layers
  config_defaults.validate(c)
  return c


def _images():
  rs = np.random.RandomState(0)
  return {'image': rs.uniform(-1, 1, (4, 28, 28, 1)).astype(np.float32)}


def _loss_and_grads(config, params):
  model = titok.build_tokenizer(config)
  loss_fn = functools.partial(tokenizer.tokenizer_loss, model=model,
                              spec=registry.spec(config), config=config)
  (loss, _), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params, {}, _images())
  return loss, grads


@pytest.fixture(scope='module')
def plain():
  c = _config()
  boxed = jax.jit(titok.build_tokenizer(c).init)(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  params = jax.device_get(nn.meta.unbox(boxed['params']))
  return params, _loss_and_grads(c, params)


@pytest.mark.parametrize('remat_policy,scan_layers', [
    ('full', False), ('dots_saveable', False), ('none', True),
    ('dots_with_no_batch_dims_saveable', True)])
def test_remat_and_scan_match_the_plain_model(plain, remat_policy, scan_layers):
  params, (loss, grads) = plain
  c = _config(remat_policy, scan_layers)
  if scan_layers:
    params, grads = vit.stack_block_params(params), vit.stack_block_params(grads)
  loss2, grads2 = _loss_and_grads(c, params)
  np.testing.assert_allclose(loss2, loss, rtol=1e-6)
  assert jax.tree.structure(grads2) == jax.tree.structure(grads)
  for g, g2 in zip(jax.tree.leaves(grads), jax.tree.leaves(grads2)):
    np.testing.assert_allclose(g2, g, rtol=1e-4, atol=1e-6)


def test_scanned_params_have_a_replicated_layers_axis():
  c = _config(scan_layers=True)
  mesh = sharding.make_mesh(c.mesh)
  task = tokenizer.TokenizerTask(c, mesh)
  shardings = setup.state_shardings(task, c, mesh)
  qkv = jax.eval_shape(task.init_state, jax.random.key(0)).params['encoder'][
      'transformer']['layers']['attn']['qkv']['kernel']
  assert qkv.shape == (2, 32, 3, 2, 16)
  spec = shardings.params['encoder']['transformer']['layers']['attn']['qkv']['kernel'].spec
  assert spec[0] is None


def test_unknown_remat_policy_is_a_clear_error():
  c = _config()
  c.model.remat_policy = 'everything'
  with pytest.raises(ValueError, match='model.remat_policy'):
    config_defaults.validate(c)
  assert set(config_defaults.REMAT_POLICIES) == set(vit.REMAT_POLICIES)

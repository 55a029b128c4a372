"""SelfBootTok model and tokenizer step: generate mode depends only on the global ids,
the step runs and agrees on 1 and 8 devices, both codebooks restart, bad config is named."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import selfboottok_fmnist
from sbt_jax import config_defaults
from sbt_jax import sharding
from sbt_jax.models import registry
from tests import fakes
from tests import test_train_step


def _config(**overrides):
  c = selfboottok_fmnist.get_config('runlocal')
  c.optim.warmup_steps = 1
  c.optim.learning_rate = 3e-3
  for key, value in overrides.items():
    node = c
    *path, last = key.split('.')
    for p in path:
      node = node[p]
    node[last] = value
  return c


def _images(n=8, seed=0):
  return jnp.asarray(test_train_step._batch(n, seed)['image'])


# ('ot', False) is the path every other SelfBootTok test runs; here the OT path with slot
# positions (the generate-side plan feeds the decoder) and the no-OT control.
@pytest.mark.parametrize('local_tokens,slot_positions', [('ot', True), ('latent', False)])
def test_generate_mode_depends_only_on_global_ids(local_tokens, slot_positions):
  c = _config(**{'model.local_tokens': local_tokens, 'model.slot_positions': slot_positions})
  model = registry.build_tokenizer(c)
  x1 = _images(4, seed=0)
  params = fakes.jit_init(model, jax.random.key(0), x1)['params']
  jitted = {}

  def apply(*args, method):
    if method not in jitted:  # one compile per method (eager OT loops are slow)
      jitted[method] = jax.jit(lambda p, *a: model.apply({'params': p}, *a, method=method),
                               static_argnums=(3,) if method == 'decode_generate' else ())
    return jitted[method](params, *args)

  g1, l1 = apply(x1, method='encode')
  # A second image with the same global ids: the first one plus noise small enough not to
  # move any global id, large enough to change the local content.
  for scale in (3e-2, 1e-2, 3e-3, 1e-3):
    x2 = x1 + scale * jax.random.normal(jax.random.key(1), x1.shape)
    g2, l2 = apply(x2, method='encode')
    if np.array_equal(g1, g2):
      break
  np.testing.assert_array_equal(g1, g2)
  f1 = apply(x1, method='aligner_targets')['f']
  f2 = apply(x2, method='aligner_targets')['f']
  assert float(jnp.abs(f1 - f2).max()) > 0  # the image-side 2D tokens did change
  for rng, temperature in ((jax.random.key(0), 0.0), (jax.random.key(7), 1.0)):
    gen1, ids1 = apply(apply(x1, method='encode_global'), rng, temperature,
                       method='decode_generate')
    gen2, ids2 = apply(apply(x2, method='encode_global'), rng, temperature,
                       method='decode_generate')
    if temperature == 0:
      np.testing.assert_array_equal(np.asarray(ids1),
                                    np.asarray(apply(g1, method='local_logits')).argmax(-1))
    np.testing.assert_array_equal(np.asarray(ids1), np.asarray(ids2))
    np.testing.assert_array_equal(np.asarray(gen1), np.asarray(gen2))
  # Sampling really samples: another seed gives other local ids somewhere.
  _, ids3 = apply(g1, jax.random.key(8), 1.0, method='decode_generate')
  _, ids4 = apply(g1, jax.random.key(9), 1.0, method='decode_generate')
  assert not np.array_equal(np.asarray(ids3), np.asarray(ids4))
  # Compress mode decodes what was stored: another local id changes the image.
  out1 = apply(g1, l1, method='decode_compress')
  out2 = apply(g1, (l1 + 1) % c.model.local_codebook_size, method='decode_compress')
  assert float(jnp.abs(out1 - out2).max()) > 0


def test_train_path_generate_reconstruction_matches_decode_generate():
  c = _config(**{'loss.w_generate': 0.5})
  model = registry.build_tokenizer(c)
  x = _images(4)
  params = fakes.jit_init(model, jax.random.key(0), x)['params']
  _, aux = jax.jit(lambda p: model.apply({'params': p}, x))(params)
  gen, _ = jax.jit(lambda p, ids: model.apply({'params': p}, ids, method='decode_generate'))(
      params, aux['ids'])
  # Straight-through values differ from the hard codes only by float rounding.
  np.testing.assert_allclose(np.asarray(aux['recon_generate']), np.asarray(gen), atol=1e-4)


def _run(config, devices, steps):
  from sbt_jax.trainers import setup, tokenizer  # pylint: disable=g-import-not-at-top
  mesh = sharding.make_mesh(config.mesh, devices)
  task = tokenizer.TokenizerTask(config, mesh)
  prepared = setup.prepare(task, config, mesh, frozen={'lpips': None})
  state, frozen, step_fn = prepared.state, prepared.frozen, prepared.step_fn
  history = []
  for i in range(steps):
    batch = sharding.global_batch(test_train_step._batch(), mesh)
    state, metrics = step_fn(state, frozen, batch, jax.random.key(i))
    history.append(jax.device_get(metrics))
  return state, history


@pytest.mark.multi_device
def test_step_on_eight_devices_matches_one_device():
  """Also covers the soft global quantizer, restarts of both codebooks and w_generate."""
  common = {'loss.perceptual_weight': 0.0, 'loss.w_generate': 0.3,
            'model.global_quantizer': 'soft', 'model.dead_code_restart_every': 2}
  c1 = _config(**common, **{'mesh.data': 1, 'mesh.fsdp': 1})
  c8 = _config(**common, **{'mesh.data': 4, 'mesh.fsdp': 2})
  s1, h1 = _run(c1, jax.devices()[:1], 2)
  s8, h8 = _run(c8, jax.devices(), 2)
  for m1, m8 in zip(h1, h8):
    for name in ('loss', 'align_loss', 'local_ce', 'ot_cost', 'generate_l1',
                 'codes_restarted'):
      np.testing.assert_allclose(m8[name], m1[name], rtol=1e-5, atol=1e-5, err_msg=name)
    for name, value in m1.items():
      assert np.isfinite(value), name
  assert int(h1[1]['codes_restarted']) > 0  # step 2 restarts unused global + local codes
  assert set(s1.model_state) == {'codebook_usage', 'local_codebook_usage'}
  assert 'soft_assignment_entropy' in h1[0]
  chex.assert_trees_all_close(jax.device_get(s8.params), jax.device_get(s1.params),
                              atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('key,value,message', [
    ('model.local_tokens', 'pixels', 'model.local_tokens'),
    ('model.ot.plan_grad', 'implicit', 'model.ot.plan_grad'),
    ('model.global_quantizer', 'fsq', 'model.global_quantizer'),
    ('stage', 'aligner', 'aligner.tokenizer_workdir'),
])
def test_bad_selfboottok_config_names_the_field(key, value, message):
  c = _config(**{key: value})
  with pytest.raises(ValueError, match=message.replace('.', r'\.')):
    config_defaults.validate(c)

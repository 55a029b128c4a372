"""The tensor mesh axis: tensor=2 and data=2 x fsdp=2 x tensor=2 train like one device (the
tokenizer, and a generator whose frozen tokenizer is sharded by the rules too); parameters,
frozen params and activations (sharding.constrain) of the compiled step carry 'tensor'."""
import jax
from jax.extend import core as jax_core
import numpy as np
import pytest

from configs import generator_fmnist
from configs import titok_fmnist
from sbt_jax import sharding
from sbt_jax.data import pipeline
from sbt_jax.trainers import generator as generator_trainer
from sbt_jax.trainers import setup
from sbt_jax.trainers import tokenizer

pytestmark = pytest.mark.multi_device  # every test here runs on meshes of up to 8 devices

MESHES = {'1 device': dict(data=1, fsdp=1, tensor=1), 'tensor=2': dict(data=4, fsdp=1, tensor=2),
          'data2 fsdp2 tensor2': dict(data=2, fsdp=2, tensor=2)}


def _with_mesh(c, name):
  for k, v in MESHES[name].items():
    c.mesh[k] = v
  c.model.attention_impl = 'xla'  # compiles faster than the CPU default; same math
  return c


def _tokenizer_config(name):
  c = titok_fmnist.get_config('runlocal')
  c.loss.perceptual_weight = 0.0
  c.optim.warmup_steps, c.optim.learning_rate = 1, 3e-3
  return _with_mesh(c, name)


def _generator_config(name, data_dir, tokenizer_workdir):
  c = generator_fmnist.get_config('runlocal')
  c.data.data_dir = data_dir
  c.generator.tokenizer_workdir = tokenizer_workdir
  c.generator.attention_impl = 'xla'
  c.optim.learning_rate = 3e-3
  return _with_mesh(c, name)


def _devices(name):
  return jax.devices()[:int(np.prod(list(MESHES[name].values())))]


def _train(task_cls, config, name, local_batch, num_steps=2):
  """(losses, prepared, mesh) of num_steps steps on the same batch."""
  mesh = sharding.make_mesh(config.mesh, _devices(name))
  task = task_cls(config, mesh)
  prepared = setup.prepare(task, config, mesh)
  state, losses = prepared.state, []
  batch = sharding.global_batch(local_batch, mesh)
  for i in range(num_steps):
    state, metrics = prepared.step_fn(state, prepared.frozen, batch, jax.random.key(i))
    losses.append(float(metrics['loss']))
  return losses, prepared, mesh, batch


def _specs(tree):
  return [str(x.sharding.spec) for x in jax.tree.leaves(tree)]


def _constraint_specs(prepared, batch):
  """PartitionSpecs of the activation constraints in the traced train step."""
  jaxpr = jax.make_jaxpr(prepared.step_fn)(prepared.state, prepared.frozen, batch,
                                           jax.random.key(0))
  found = []

  def walk(j):
    for eqn in j.eqns:
      if eqn.primitive.name == 'sharding_constraint':
        found.append(str(eqn.params['sharding'].spec))
      for sub in jax_core.jaxprs_in_params(eqn.params):
        walk(sub)
  walk(jaxpr.jaxpr)
  return found


def _images(n=16):
  rs = np.random.RandomState(0)
  base = rs.uniform(-1, 1, (n, 1, 1, 1)).astype(np.float32)
  return np.clip(base + 0.3 * rs.randn(n, 28, 28, 1), -1, 1).astype(np.float32)


@pytest.fixture(scope='module')
def tokenizer_one_device():
  return _train(tokenizer.TokenizerTask, _tokenizer_config('1 device'), '1 device',
                {'image': _images()})[0]


@pytest.mark.parametrize('name', ['tensor=2', 'data2 fsdp2 tensor2'])
def test_tokenizer_tensor_parallel_matches_one_device(tokenizer_one_device, name):
  losses, prepared, _, batch = _train(tokenizer.TokenizerTask, _tokenizer_config(name), name,
                                      {'image': _images()})
  np.testing.assert_allclose(losses, tokenizer_one_device, rtol=1e-5, atol=1e-5)
  block = prepared.state.params['encoder']['transformer']['block0']
  assert 'tensor' in str(block['mlp']['fc1']['kernel'].sharding.spec)     # ('embed', 'mlp')
  assert 'tensor' in str(block['attn']['qkv']['kernel'].sharding.spec)    # heads
  constraints = _constraint_specs(prepared, batch)
  assert any('tensor' in s for s in constraints), constraints  # heads and mlp activations
  assert any("('data', 'fsdp')" in s for s in constraints), constraints  # the batch


def test_constrain_is_a_no_op_outside_a_train_step():
  x = np.ones((4, 3, 8), np.float32)
  assert sharding.constrain(x, ('batch', 'length', 'mlp')) is x
  mesh = sharding.make_mesh(_with_mesh(titok_fmnist.get_config('runlocal'), 'tensor=2').mesh)
  with sharding.activation_sharding(mesh, (('batch', 'data'), ('mlp', 'tensor'))):
    y = jax.jit(lambda a: sharding.constrain(a, ('batch', 'length', 'mlp')))(x)
  assert y.sharding.spec == jax.sharding.PartitionSpec('data', None, 'tensor')


@pytest.fixture(scope='module')
def generator_batch_and_one_device(fmnist_data_dir, tiny_workdir):
  local = next(iter(pipeline.make_train_loader(
      _generator_config('1 device', fmnist_data_dir, tiny_workdir).data, seed=0)))
  losses = _train(generator_trainer.GeneratorTask,
                  _generator_config('1 device', fmnist_data_dir, tiny_workdir), '1 device',
                  local)[0]
  return local, losses


@pytest.mark.parametrize('name', ['tensor=2', 'data2 fsdp2 tensor2'])
def test_generator_tensor_parallel_matches_one_device(generator_batch_and_one_device,
                                                      fmnist_data_dir, tiny_workdir, name):
  """MaskGIT encoding images with the frozen tokenizer inside the step: the same losses on
  every mesh, and the frozen tokenizer params are sharded by the rules (not replicated)."""
  local, one = generator_batch_and_one_device
  losses, prepared, _, batch = _train(
      generator_trainer.GeneratorTask, _generator_config(name, fmnist_data_dir, tiny_workdir),
      name, local)
  np.testing.assert_allclose(losses, one, rtol=1e-5, atol=1e-5)
  assert any('tensor' in s for s in _specs(prepared.state.params))
  assert any('tensor' in s for s in _specs(prepared.frozen))
  assert any('tensor' in s for s in _constraint_specs(prepared, batch))

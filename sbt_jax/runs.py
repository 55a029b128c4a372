"""The run store: what a training run left in its workdir, read back without its trainer.

  config = runs.load_config(workdir)               # config.json, defaults filled in
  tok = runs.restore_tokenizer(workdir, mesh)      # config, spec, model, params, step
  adapter, params, step = runs.restore_global_tokenizer(workdir, mesh)   # for generators
  gen = runs.restore_generator(workdir, mesh)      # a generator run and its tokenizer record

Params are restored alone (EMA params when the run kept them; no optimizer state) against
an abstract tree built from the model and the run's mesh rules, placed on `mesh`. Every
user error (no run, no checkpoint, a run of the wrong stage) is a ValueError /
FileNotFoundError / checkpointing.CheckpointError naming the directory.
"""
import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp

from sbt_jax import checkpointing
from sbt_jax import config_defaults
from sbt_jax import paths
from sbt_jax import sharding
from sbt_jax.models import generator as generator_lib
from sbt_jax.models import registry
from sbt_jax.models import spec as spec_lib

# A generator run records the tokenizer (workdir, step) it trained on in this file.
TOKENIZER_RECORD = 'tokenizer.json'


def _fill_defaults(defaults: dict, loaded: dict) -> dict:
  """`loaded` with every field it lacks taken from `defaults` (recursively)."""
  out = dict(defaults)
  for k, v in loaded.items():
    out[k] = _fill_defaults(defaults[k], v) if (
        isinstance(v, dict) and isinstance(defaults.get(k), dict)) else v
  return out


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The run's config.json; fields added to sbt_jax after the run get their defaults and
  renamed fields their new names (so older workdirs keep loading)."""
  path = paths.join(workdir, 'config.json')
  if not paths.isfile(path):
    raise FileNotFoundError(f'{path} not found: {workdir!r} is not the workdir of an sbt_jax '
                            'training run.')
  loaded = paths.read_json(path)
  if not isinstance(loaded, dict):
    raise ValueError(f'{path} does not hold a config object.')
  loaded = config_defaults.migrate_renamed_keys(loaded)
  return ml_collections.ConfigDict(
      _fill_defaults(config_defaults.base_config().to_dict(), loaded))


def expect_stage(config, workdir: str, stage: str, what: str = '') -> None:
  if config.stage != stage:
    raise ValueError(f'{what or "workdir"}={workdir!r} is the workdir of a {config.stage!r} '
                     f"run, not of a stage='{stage}' run.")


def local_mesh():
  """A data-parallel mesh over this process's devices (inference and sampling)."""
  return sharding.make_mesh(ml_collections.ConfigDict({'data': -1, 'fsdp': 1, 'tensor': 1}),
                            jax.local_devices())


def abstract_params(init_fn, mesh, rules):
  """ShapeDtypeStructs with shardings of init_fn(rng)['params'] (nn.Partitioned boxes)."""
  boxed = jax.eval_shape(lambda rng: init_fn(rng)['params'], jax.random.key(0))
  return checkpointing.abstract_like(nn.meta.unbox(boxed),
                                     sharding.state_shardings(boxed, mesh, rules))


def restore_params(workdir: str, abstract, step: int | None = None) -> tuple[Any, int]:
  """(params, step) of the checkpoint at `step` (None: the latest): the EMA params if the
  run kept them, else the raw params; nothing else of the train state is read."""
  directory = checkpointing.checkpoint_dir(workdir)
  if not paths.isdir(directory):
    raise checkpointing.CheckpointError(
        f'No checkpoints in {directory}: train first or pass the workdir of a finished run.')
  manager = ocp.CheckpointManager(directory, item_names=('state',),
                                  item_handlers={'state': ocp.PyTreeCheckpointHandler()})
  try:
    steps = list(manager.all_steps())
    step = manager.latest_step() if step is None else step
    if step is None:
      raise checkpointing.CheckpointError(f'No complete checkpoint in {directory}.')
    if step not in steps:
      raise checkpointing.CheckpointError(f'No checkpoint for step {step} in {directory}; '
                                          f'available: {steps}')
    try:
      saved = manager.item_metadata(step)['state']
      key = 'ema_params' if saved.get('ema_params') is not None else 'params'
      item = {key: abstract}
      restore_args = jax.tree.map(lambda a: ocp.ArrayRestoreArgs(sharding=a.sharding), item)
      restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
          item=item, restore_args=restore_args, partial_restore=True)))
    except Exception as e:  # Orbax raises many types for bad files; name the checkpoint.
      raise checkpointing.CheckpointError(
          f'Could not restore the params of checkpoint step {step} from {directory}: it is '
          f'corrupt, incomplete, or was written for a different model/config '
          f'({type(e).__name__}: {str(e)[:500]}).') from e
  finally:
    manager.close()
  return restored['state'][key], step


def warm_start(state, state_shardings, workdir: str, step: int = -1):
  """`state` (a train state) with params and EMA params from run `workdir`'s checkpoint at
  `step` (-1: the latest), restored onto the state's shardings (train.init_from)."""
  abstract = checkpointing.abstract_like(state.params, state_shardings.params)
  params, _ = restore_params(workdir, abstract, None if step < 0 else step)
  ema = None if state.ema_params is None else jax.tree.map(jnp.copy, params)
  return state.replace(params=params, ema_params=ema)


def dummy_images(config, batch_size: int = 1):
  """Zero images of the run's geometry, what a tokenizer is initialised (or traced) on."""
  d = config.data
  return jnp.zeros((batch_size, d.image_size, d.image_size, d.channels), jnp.float32)


@dataclasses.dataclass
class RestoredTokenizer:
  """A tokenizer run's pieces: params (+ 'aligner' of an aligner run) fit `model`."""
  config: ml_collections.ConfigDict
  spec: spec_lib.TokenizerSpec
  model: Any
  params: Any
  step: int
  aligner_cfg: Any = None  # the aligner run's aligner size, when one replaced the own


def restore_tokenizer(workdir: str, mesh, step: int | None = None,
                      aligner_workdir: str | None = None,
                      aligner_step: int | None = None) -> RestoredTokenizer:
  """The tokenizer of a stage='tokenizer' run; with aligner_workdir, its model rebuilt
  around that aligner-stage run's aligner (its size) and params['aligner'] replaced."""
  config = load_config(workdir)
  expect_stage(config, workdir, 'tokenizer')
  family = registry.spec(config)
  aligner_cfg = None
  if aligner_workdir:
    if not family.has_aligner_stage:
      raise ValueError(f'aligner_workdir={aligner_workdir!r} needs a selfboottok tokenizer: '
                       f'{workdir!r} is {config.model.name!r}, which has no aligner stage.')
    al_config = load_config(aligner_workdir)
    expect_stage(al_config, aligner_workdir, 'aligner', 'aligner_workdir')
    aligner_cfg = al_config.aligner.model
  model = family.build(config, aligner_cfg)
  abstract = abstract_params(lambda rng: model.init(rng, dummy_images(config)), mesh,
                             config.mesh.rules)
  if aligner_cfg is None:
    params, step = restore_params(workdir, abstract, step)
  else:
    tok_abstract = {k: v for k, v in abstract.items() if k != 'aligner'}
    params, step = restore_params(workdir, tok_abstract, step)
    aligner, _ = restore_params(aligner_workdir, abstract['aligner'], aligner_step)
    params = {**params, 'aligner': aligner}
  return RestoredTokenizer(config, family, model, params, step, aligner_cfg)


def restore_global_tokenizer(workdir: str, mesh, step: int = -1,
                             aligner_workdir: str | None = None, rate: float = -1.0):
  """(adapter, params, step) of the frozen tokenizer a generator sees (step -1: latest);
  params = {'tokenizer': ...} (+ {'aligner': ...} with aligner_workdir)."""
  tok = restore_tokenizer(workdir, mesh, None if step < 0 else step, aligner_workdir)
  adapter = tok.spec.global_tokenizer(tok.config, rate, tok.aligner_cfg)
  if not aligner_workdir:
    return adapter, {'tokenizer': tok.params}, tok.step
  params = {'tokenizer': {k: v for k, v in tok.params.items() if k != 'aligner'},
            'aligner': tok.params['aligner']}
  return adapter, params, tok.step


def global_tokenizer_for(workdir: str, rate: float = -1.0):
  """(tokenizer config, adapter) of a tokenizer run, without reading its checkpoint."""
  config = load_config(workdir)
  expect_stage(config, workdir, 'tokenizer', 'generator.tokenizer_workdir')
  return config, registry.spec(config).global_tokenizer(config, rate)


def read_tokenizer_record(workdir: str) -> tuple[str, int] | None:
  """(tokenizer workdir, step) a generator run recorded, or None before its first step."""
  path = paths.join(workdir, TOKENIZER_RECORD)
  if not paths.isfile(path):
    return None
  record = paths.read_json(path)
  return record['workdir'], int(record['step'])


def write_tokenizer_record(workdir: str, tokenizer_workdir: str, step: int) -> None:
  paths.write_json(paths.join(workdir, TOKENIZER_RECORD),
                   {'workdir': tokenizer_workdir, 'step': step})


def generator_dummy_seq(config, num_tokens: int):
  length = num_tokens + (1 if config.generator.type == 'maskgit' else 0)
  return jnp.zeros((1, length), jnp.int32)


@dataclasses.dataclass
class RestoredGeneratorRun:
  """A generator run's params and model, and the tokenizer (workdir, step) it trained on."""
  config: ml_collections.ConfigDict
  model: Any
  params: Any
  step: int
  tokenizer_workdir: str
  tokenizer_step: int


def restore_generator(workdir: str, mesh, step: int | None = None) -> RestoredGeneratorRun:
  config = load_config(workdir)
  expect_stage(config, workdir, 'generator')
  g = config.generator
  tok_workdir, tok_step = read_tokenizer_record(workdir) or (g.tokenizer_workdir,
                                                             g.tokenizer_step)
  _, adapter = global_tokenizer_for(tok_workdir, g.tatok_rate)
  model = generator_lib.build_generator(g, adapter.vocab_size, adapter.num_tokens)
  dummy = generator_dummy_seq(config, adapter.num_tokens)
  abstract = abstract_params(lambda rng: model.init(rng, dummy), mesh, config.mesh.rules)
  params, step = restore_params(workdir, abstract, step)
  return RestoredGeneratorRun(config, model, params, step, tok_workdir, tok_step)

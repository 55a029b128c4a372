"""Device mesh from the config and logical-name -> NamedSharding for every state leaf.

Model code names parameter axes ('embed', 'mlp', ...); `config.mesh.rules` maps those names
to mesh axes ('data', 'fsdp', 'tensor'). A dimension that a mesh axis does not divide is
replicated instead of failing, so tiny test models run on any mesh.

Activations are laid out by the same rules (models/layout.py): model code calls
`layout.constrain(x, names)`, which inside `activation_sharding(mesh, rules)` (the train step
is traced in it) pins x to the mesh axes of its logical names, and elsewhere (inference,
tests of modules) does nothing.
With the default rules a tensor axis of size T splits attention heads ('heads') and MLP
hidden units ('mlp') T ways (Megatron-style), the batch over data x fsdp.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import optax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from sbt_jax.models import layout

MESH_AXES = ('data', 'fsdp', 'tensor')
BATCH_AXES = ('data', 'fsdp')


def mesh_shape(mesh_cfg: ml_collections.ConfigDict, num_devices: int) -> tuple[int, ...]:
  sizes = [mesh_cfg[a] for a in MESH_AXES]
  known = int(np.prod([s for s in sizes if s != -1]))
  if -1 in sizes:
    if num_devices % known:
      raise ValueError(f'mesh {dict(zip(MESH_AXES, sizes))}: {num_devices} devices are not '
                       f'divisible by the fixed axes ({known})')
    sizes[sizes.index(-1)] = num_devices // known
  if int(np.prod(sizes)) != num_devices:
    raise ValueError(f'mesh {dict(zip(MESH_AXES, sizes))} needs {int(np.prod(sizes))} '
                     f'devices but {num_devices} are available')
  return tuple(sizes)


def make_mesh(mesh_cfg: ml_collections.ConfigDict, devices: Sequence[Any] | None = None) -> Mesh:
  devices = list(devices if devices is not None else jax.devices())
  shape = mesh_shape(mesh_cfg, len(devices))
  return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES),
                       devices=devices)


def state_shardings(boxed_abstract_tree, mesh: Mesh, rules) -> Any:
  """NamedSharding for every leaf of a tree whose params are nn.Partitioned boxes.

  The result has the structure of the unboxed tree (what `nn.meta.unbox` gives).
  """
  rules = layout.normalized_rules(rules)
  logical_specs = nn.get_partition_spec(boxed_abstract_tree)
  shapes = nn.meta.unbox(boxed_abstract_tree)

  def to_sharding(logical, leaf):
    if isinstance(leaf, optax.MaskedNode):  # optimizer state of a frozen group: no arrays
      return leaf
    mesh_spec = nn.logical_to_mesh_axes(logical, rules) if len(logical) else P()
    return NamedSharding(mesh, layout.fit_spec(mesh_spec, leaf.shape, mesh))

  return jax.tree.map(to_sharding, logical_specs, shapes,
                      is_leaf=lambda x: isinstance(x, (P, optax.MaskedNode)))


# Activation layout (models/layout.py), re-exported for the trainers.
activation_sharding = layout.activation_sharding
constrain = layout.constrain


def placed_or_replicated(tree, mesh: Mesh) -> Any:
  """The sharding of each leaf already placed on `mesh` (e.g. frozen params restored by the
  rules: runs.restore_params), replicated for the others (numpy arrays)."""
  def one(x):
    s = getattr(x, 'sharding', None)
    return s if isinstance(s, NamedSharding) and s.mesh == mesh else replicated(mesh)
  return jax.tree.map(one, tree)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over data x fsdp, the rest replicated."""
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def global_batch(local_batch: dict, mesh: Mesh) -> dict:
  """Per-host numpy batch -> global jax.Arrays sharded over the batch axes."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)

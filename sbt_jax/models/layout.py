"""Activation layout inside the model code: `constrain(x, logical_names)` pins an activation
to the mesh axes that config.mesh.rules give its logical axis names, while a train step is
traced inside `activation_sharding(mesh, rules)` (trainers/setup.py), and does nothing
elsewhere (inference, module tests). Parameters carry the same logical names
(nn.with_logical_partitioning); sbt_jax/sharding.py places them.
"""
import contextlib
import threading

import flax.linen as nn
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np


def normalized_rules(rules) -> tuple:
  """config.mesh.rules (lists from JSON) as a tuple of (name, mesh axes) pairs."""
  return tuple((name, tuple(ax) if isinstance(ax, list) else ax) for name, ax in rules)


def fit_spec(mesh_spec: P, shape: tuple[int, ...], mesh: Mesh) -> P:
  """Drops mesh axes from dimensions they do not divide (those dimensions replicate)."""
  fitted = []
  for dim, axes in zip(shape, tuple(mesh_spec) + (None,) * (len(shape) - len(mesh_spec))):
    if axes is None:
      fitted.append(None)
      continue
    axes_t = axes if isinstance(axes, tuple) else (axes,)
    size = int(np.prod([mesh.shape[a] for a in axes_t]))
    fitted.append(axes if dim % size == 0 else None)
  return P(*fitted)


_ACTIVATIONS = threading.local()  # .value: (mesh, rules) while a step is traced, or None


@contextlib.contextmanager
def activation_sharding(mesh: Mesh, rules):
  """`constrain` calls traced inside this block lay activations out on `mesh` by `rules`."""
  previous = getattr(_ACTIVATIONS, 'value', None)
  _ACTIVATIONS.value = (mesh, normalized_rules(rules))
  try:
    yield
  finally:
    _ACTIVATIONS.value = previous


def constrain(x, logical_axes: tuple):
  """`x` pinned to the mesh axes its logical axis names map to (one name per dimension;
  a mesh axis goes to the first name that claims it, a dimension it does not divide is
  replicated). A no-op outside `activation_sharding`."""
  context = getattr(_ACTIVATIONS, 'value', None)
  if context is None:
    return x
  mesh, rules = context
  spec = fit_spec(nn.logical_to_mesh_axes(logical_axes, rules), x.shape, mesh)
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))

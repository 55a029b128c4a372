"""Optimal-transport pooling of N 2D tokens into L 1D slots (ott-jax Sinkhorn).

For one image: x (N x D) 2D tokens, y (L x D) slot prototypes. Both are l2-normalised, the
cost is their squared Euclidean distance (2 - 2 cos, in [0, 4]) and epsilon is explicit:
`epsilon_rel` times the mean cost of this image (0.01 gives peaked plans; 0.05 gave nearly
uniform ones). Marginals: uniform on both sides, or `tau_a` < 1 on the 2D side (unbalanced:
background patches may stay partly unassigned). The plan T (N x L) pools content:

  pooled_j = sum_i T_ij x_i / sum_i T_ij        (= L * sum_i T_ij x_i when balanced)

`plan_grad='none'` (default) stops the gradient of T, so gradients reach x only through the
pooled content; `'unroll'` differentiates through the Sinkhorn iterations (ott-jax
unrolling; implicit differentiation of the plan matrix gave NaN in ott-jax 0.6.0).
`transport_cost` = <T, C> with T held fixed is, by Danskin's theorem, the exact gradient of
the optimal cost w.r.t. the points: a cheap way to pull prototypes onto their patches.
"""
import dataclasses

import jax
import jax.numpy as jnp
from ott.geometry import pointcloud
from ott.problems.linear import linear_problem
from ott.solvers.linear import implicit_differentiation
from ott.solvers.linear import sinkhorn

from sbt_jax.models.quantizer import l2_normalize

PLAN_GRADS = ('none', 'unroll')
MARGINALS = ('uniform', 'unbalanced')


@dataclasses.dataclass(frozen=True)
class OTConfig:
  epsilon_rel: float = 0.01
  marginals: str = 'uniform'
  tau_a: float = 0.9
  plan_grad: str = 'none'
  max_iterations: int = 300
  threshold: float = 1e-3

  @classmethod
  def from_config(cls, ot_cfg) -> 'OTConfig':
    return cls(**{f.name: ot_cfg[f.name] for f in dataclasses.fields(cls)})


def cost_matrix(x_NxD, y_LxD):
  """Squared distance of l2-normalised points (N x L)."""
  xn, yn = l2_normalize(x_NxD), l2_normalize(y_LxD)
  return jnp.maximum(2.0 - 2.0 * xn @ yn.T, 0.0)


def solve_plan(x_NxD, y_LxD, cfg: OTConfig):
  """Transport plan T (N x L, sums to ~1) and solver statistics for one image."""
  dtype = jnp.promote_types(x_NxD.dtype, jnp.float32)  # bf16 -> f32; f64 stays f64
  xn = l2_normalize(x_NxD.astype(dtype))
  yn = l2_normalize(y_LxD.astype(dtype))
  if cfg.plan_grad == 'none':
    xn, yn = jax.lax.stop_gradient(xn), jax.lax.stop_gradient(yn)
  # Explicit epsilon; with 'unroll' its dependence on the points is differentiated too.
  epsilon = cfg.epsilon_rel * jnp.mean(cost_matrix(xn, yn))
  geom = pointcloud.PointCloud(xn, yn, epsilon=epsilon)
  tau_a = cfg.tau_a if cfg.marginals == 'unbalanced' else 1.0
  problem = linear_problem.LinearProblem(geom, tau_a=tau_a, tau_b=1.0)
  implicit = None if cfg.plan_grad == 'unroll' else implicit_differentiation.ImplicitDiff()
  solver = sinkhorn.Sinkhorn(max_iterations=cfg.max_iterations, threshold=cfg.threshold,
                             implicit_diff=implicit)
  out = solver(problem)
  plan_NxL = out.matrix
  p = plan_NxL / jnp.maximum(jnp.sum(plan_NxL), 1e-12)
  entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.maximum(p, 1e-30)), 0.0))
  n, l = plan_NxL.shape
  stats = {
      'ot_iterations': out.n_iters.astype(jnp.float32),
      'ot_converged': out.converged.astype(jnp.float32),
      # 1.0 = the uniform plan (no structure); log(N) / log(N L) = each patch in one slot.
      'ot_plan_entropy': jax.lax.stop_gradient(entropy / jnp.log(n * l)),
  }
  return plan_NxL, stats


def pool(content_NxC, plan_NxL):
  """Slot j = plan-weighted mean of the 2D tokens it receives (L x C)."""
  mass_L = jnp.maximum(jnp.sum(plan_NxL, axis=0), 1e-12)
  content_NxC = content_NxC.astype(jnp.promote_types(content_NxC.dtype, jnp.float32))
  return (plan_NxL.T @ content_NxC) / mass_L[:, None]


def transport_cost(x_NxD, y_LxD, plan_NxL):
  """<T, C(x, y)> with T treated as a constant (gradient flows to x and y)."""
  return jnp.sum(jax.lax.stop_gradient(plan_NxL) * cost_matrix(x_NxD, y_LxD))


def ot_pool(x_BxNxD, y_BxLxD, cfg: OTConfig):
  """Batched: (pooled B x L x D, plan B x N x L, transport cost B, mean stats)."""
  def one(x, y):
    plan, stats = solve_plan(x, y, cfg)
    return pool(x, plan), plan, transport_cost(x, y, plan), stats
  pooled, plan, cost, stats = jax.vmap(one)(x_BxNxD, y_BxLxD)
  return pooled, plan, cost, jax.tree.map(jnp.mean, stats)

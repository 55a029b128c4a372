"""OT pooling: plan marginals, pooled content, and the unrolled gradient vs finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sbt_jax.models import ot_pool


def _points(n=20, l=4, d=6, seed=0):
  rs = np.random.RandomState(seed)
  return rs.randn(n, d).astype(np.float32), rs.randn(l, d).astype(np.float32)


def test_uniform_plan_marginals_within_tolerance():
  x, y = _points()
  cfg = ot_pool.OTConfig(epsilon_rel=0.01, threshold=1e-3, max_iterations=2000)
  plan, stats = jax.jit(lambda a, b: ot_pool.solve_plan(a, b, cfg))(x, y)
  plan = np.asarray(plan)
  assert float(stats['ot_converged']) == 1.0
  np.testing.assert_allclose(plan.sum(1), np.full(20, 1 / 20), atol=1e-3)
  np.testing.assert_allclose(plan.sum(0), np.full(4, 1 / 4), atol=1e-3)
  assert 0 < float(stats['ot_plan_entropy']) < 1  # structured, not the uniform plan
  # Small epsilon: nearly every patch goes (almost) entirely to one slot.
  assert np.mean(plan.max(1) / plan.sum(1) > 0.9) > 0.8


def test_unbalanced_plan_keeps_slot_marginal_and_relaxes_patches():
  x, y = _points(seed=1)
  cfg = ot_pool.OTConfig(marginals='unbalanced', tau_a=0.5, threshold=1e-5,
                         max_iterations=3000)
  plan, _ = ot_pool.solve_plan(jnp.asarray(x), jnp.asarray(y), cfg)
  plan = np.asarray(plan)
  np.testing.assert_allclose(plan.sum(0), np.full(4, 1 / 4), atol=1e-3)
  assert np.abs(plan.sum(1) - 1 / 20).max() > 1e-3  # patch side really is relaxed


def test_pooled_slot_is_plan_weighted_mean():
  x, y = _points()
  pooled, plan, cost, _ = ot_pool.ot_pool(x[None], y[None], ot_pool.OTConfig())
  plan = np.asarray(plan[0])
  expected = (plan.T @ x) / plan.sum(0)[:, None]
  np.testing.assert_allclose(np.asarray(pooled[0]), expected, rtol=1e-4, atol=1e-5)
  c = np.asarray(ot_pool.cost_matrix(x, y))
  np.testing.assert_allclose(float(cost[0]), float((plan * c).sum()), rtol=1e-5)


def test_stop_gradient_plan_passes_gradient_only_through_content():
  x, y = _points()
  cfg = ot_pool.OTConfig(plan_grad='none')
  grad_y = jax.grad(lambda b: jnp.sum(ot_pool.ot_pool(x[None], b[None], cfg)[0]))(y)
  np.testing.assert_array_equal(np.asarray(grad_y), 0.0)  # prototypes only place content


@pytest.mark.parametrize('wrt', ['x', 'y'])
def test_unrolled_gradient_matches_finite_differences(wrt):
  with jax.enable_x64(True):
    x, y = (a.astype(np.float64) for a in _points(n=12, l=3, d=4, seed=2))
    cfg = ot_pool.OTConfig(epsilon_rel=0.3, plan_grad='unroll', threshold=1e-9,
                           max_iterations=500)
    w = np.random.RandomState(3).randn(3, 4)

    def f(a, b):  # Pooled content through the plan (transport_cost holds T fixed on purpose).
      return jnp.sum(ot_pool.ot_pool(a[None], b[None], cfg)[0][0] * w)

    args = {'x': x, 'y': y}
    fn = jax.jit((lambda v: f(v, y)) if wrt == 'x' else (lambda v: f(x, v)))
    g = np.asarray(jax.jit(jax.grad(fn))(jnp.asarray(args[wrt])))
    rs = np.random.RandomState(4)
    for _ in range(2):
      d = rs.randn(*args[wrt].shape)
      h = 1e-5
      fd = (float(fn(jnp.asarray(args[wrt] + h * d))) - float(fn(jnp.asarray(args[wrt] - h * d)))) / (2 * h)
      np.testing.assert_allclose(float(np.sum(g * d)), fd, rtol=1e-6, atol=1e-8)
    # The plan really contributes: the stop-gradient version gives another gradient.
    cfg_sg = ot_pool.OTConfig(epsilon_rel=0.3, plan_grad='none', threshold=1e-9,
                              max_iterations=500)
    def f_sg(v):
      a, b = (v, y) if wrt == 'x' else (x, v)
      return jnp.sum(ot_pool.ot_pool(a[None], b[None], cfg_sg)[0][0] * w)
    g_sg = np.asarray(jax.jit(jax.grad(f_sg))(jnp.asarray(args[wrt])))
    assert np.abs(g - g_sg).max() > 1e-3

"""The HetStat head's triangular (column-slab) variance equals the dense formulation it replaced.

The reference below is the previous implementation, kept verbatim in the test: build the full [d_a, D, D]
factor from the packed parameters (diagonal fixed up by adding exp(d) - d), then one dense einsum over all
D x D entries.
The library now skips the zero upper blocks, so its numbers may differ only by float32 round-off.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from csil_lite.nets import HetStatPolicy
from csil_lite.nets.policy import _slab_bounds


def dense_reference(pol: HetStatPolicy, params, obs, detach_std_features=False):
    p = params["params"]
    f = pol.apply(params, obs, method=HetStatPolicy.stationary_features)
    d = pol.features
    rows, cols = np.tril_indices(d)
    tril = jnp.zeros((pol.action_dim, d, d), jnp.float32).at[:, rows, cols].set(p["cholesky_raw"])
    diag = jnp.diagonal(tril, axis1=-2, axis2=-1)
    chol = tril + jax.vmap(jnp.diag)(jnp.exp(diag) - diag)
    fs = jax.lax.stop_gradient(f) if detach_std_features else f
    var = jnp.sum(jnp.square(jnp.einsum("...j,ajk->...ak", fs, chol)), axis=-1)
    std = jnp.sqrt(pol.prior_variance) * jnp.tanh(jnp.sqrt(pol.min_variance + var))
    return f @ p["mean_weights"], std


def random_params(pol: HetStatPolicy, obs_dim: int, seed: int):
    """Every parameter random (the default init has zero Cholesky/mean parameters and a tiny input scale)."""
    params = pol.init(jax.random.PRNGKey(seed), jnp.zeros((1, obs_dim)))
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
    leaves = [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    params = jax.tree.unflatten(tree, leaves)
    p = dict(params["params"])
    p["log_input_scale"] = jnp.zeros_like(p["log_input_scale"])  # inputs of order one: features spread out
    p["cholesky_raw"] = p["cholesky_raw"] * (3.0 / np.sqrt(pol.features))  # variances of order one
    return {"params": p}


def assert_rel_close(actual, expected, rtol):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    np.testing.assert_array_less(np.abs(actual - expected) / scale, rtol)


@pytest.mark.parametrize(
    "action_dim,features,batch_shape",
    [(7, 256, (64,)), (3, 100, (5, 4)), (1, 8, (6,))],
)
def test_slab_head_matches_dense_head_values_and_gradients(action_dim, features, batch_shape):
    obs_dim = 19
    pol = HetStatPolicy(action_dim=action_dim, hidden=(32, 32), features=features)
    params = random_params(pol, obs_dim, seed=features)
    obs = jax.random.normal(jax.random.PRNGKey(7), (*batch_shape, obs_dim))
    for detach in (False, True):
        new_fn = jax.jit(lambda p, d=detach: pol.apply(p, obs, detach_std_features=d))
        ref_fn = jax.jit(lambda p, d=detach: dense_reference(pol, p, obs, d))
        (mean, std), (ref_mean, ref_std) = new_fn(params), ref_fn(params)
        assert std.shape == ref_std.shape == (*batch_shape, action_dim)
        # Not a degenerate comparison: stds vary between samples and sit away from the tanh saturation.
        assert float(jnp.std(ref_std)) > 1e-3 and float(jnp.max(ref_std)) < 0.99 * np.sqrt(pol.prior_variance)
        np.testing.assert_allclose(np.asarray(mean), np.asarray(ref_mean), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(std), np.asarray(ref_std), rtol=1e-5)

        w = jax.random.normal(jax.random.PRNGKey(11), std.shape)

        def loss(p, fn):
            m, s = fn(p)
            return jnp.sum(w * m) + jnp.sum(w * jnp.log(s))

        g = jax.jit(jax.grad(lambda p: loss(p, new_fn)))(params)
        g_ref = jax.jit(jax.grad(lambda p: loss(p, ref_fn)))(params)
        for path, a in jax.tree_util.tree_leaves_with_path(g):
            b = g_ref
            for k in path:
                b = b[k.key]
            assert float(jnp.max(jnp.abs(b))) > 0, path
            assert_rel_close(a, b, 1e-5)


def test_slab_bounds_cover_the_features():
    for d in (2, 8, 64, 100, 256, 1024):
        b = _slab_bounds(d)
        assert b[0] == 0 and b[-1] == d and all(lo < hi for lo, hi in zip(b[:-1], b[1:]))


def test_slab_head_needs_fewer_flops():
    """At robot/paper dimensions the head skips ~44% of the dense multiply-adds (XLA's own FLOP count)."""
    pol = HetStatPolicy(action_dim=7)
    params = random_params(pol, 19, seed=0)
    obs = jnp.zeros((512, 19))

    def flops(fn):
        cost = jax.jit(fn).lower(params, obs).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        return float(cost["flops"])

    new = flops(lambda p, o: pol.apply(p, o)[1])
    old = flops(lambda p, o: dense_reference(pol, p, o)[1])
    dense_head = 2 * 512 * 7 * 256 * 256
    assert old - new > 0.4 * dense_head, (old, new)

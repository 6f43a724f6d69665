import jax
import jax.numpy as jnp
import numpy as np
import pytest

from csil_lite.nets import HetStatPolicy, MLPPolicy, make_policy
from csil_lite.nets.layers import periodic_relu, sin_cos, triangle, triangle_wave
from csil_lite.pretrain import train_bc


@pytest.mark.parametrize("act", [sin_cos, triangle, periodic_relu])
def test_periodic_activations_have_unit_second_moment(act):
    z = jnp.linspace(0, 2 * jnp.pi, 100_001)[:-1]
    assert float(jnp.mean(act(z) ** 2)) == pytest.approx(1.0, abs=0.02)


def test_triangle_wave_shape():
    x = jnp.array([0.0, jnp.pi / 2, jnp.pi, -jnp.pi / 2, 2 * jnp.pi])
    np.testing.assert_allclose(np.asarray(triangle_wave(x)), [0, np.pi / 2, 0, -np.pi / 2, 0], atol=1e-5)
    # Unit slope at the origin, period 2 pi.
    assert float(jax.grad(triangle_wave)(0.1)) == pytest.approx(1.0)
    assert float(triangle_wave(0.3 + 2 * jnp.pi)) == pytest.approx(float(triangle_wave(0.3)), abs=1e-5)


def test_hetstat_initialisation_matches_reference():
    pol = HetStatPolicy(action_dim=3, hidden=(32, 32), features=64)
    params = pol.init(jax.random.PRNGKey(0), jnp.zeros((1, 5)))
    p = params["params"]
    assert p["cholesky_raw"].shape == (3, 64 * 65 // 2)
    np.testing.assert_allclose(np.asarray(p["log_input_scale"]), -5.0)
    L = pol.apply(params, method=HetStatPolicy.cholesky_factors)
    np.testing.assert_allclose(np.asarray(L), np.broadcast_to(np.eye(64), (3, 64, 64)), atol=1e-7)
    mean, std = pol.apply(params, jax.random.normal(jax.random.PRNGKey(1), (7, 5)))
    assert mean.shape == std.shape == (7, 3)
    np.testing.assert_allclose(np.asarray(mean), 0.0)  # zero-mean init
    assert np.all((np.asarray(std) > pol.min_std) & (np.asarray(std) < np.sqrt(0.75)))


def test_hetstat_std_formula_against_explicit_bayesian_linear_variance():
    pol = HetStatPolicy(action_dim=2, hidden=(16,), features=8)
    params = pol.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    raw = jax.random.normal(jax.random.PRNGKey(3), params["params"]["cholesky_raw"].shape) * 0.3
    params = {"params": {**params["params"], "cholesky_raw": raw}}
    obs = jax.random.normal(jax.random.PRNGKey(4), (5, 3))
    f = pol.apply(params, obs, method=HetStatPolicy.stationary_features)
    L = pol.apply(params, method=HetStatPolicy.cholesky_factors)
    cov = np.einsum("aij,akj->aik", L, L)
    var = np.einsum("bi,aik,bk->ba", f, cov, f)
    expected = np.sqrt(0.75) * np.tanh(np.sqrt(1e-5 + var))
    _, std = pol.apply(params, obs)
    np.testing.assert_allclose(np.asarray(std), expected, rtol=1e-4)
    assert np.all(np.triu(np.asarray(L), k=1) == 0)


def test_detached_std_features_stop_trunk_gradients():
    pol = HetStatPolicy(action_dim=1, hidden=(16,), features=8)
    obs = jax.random.normal(jax.random.PRNGKey(0), (4, 2))
    params = pol.init(jax.random.PRNGKey(1), obs)
    g = jax.grad(lambda p: jnp.sum(pol.apply(p, obs, detach_std_features=True)[1]))(params)["params"]
    assert float(jnp.abs(g["cholesky_raw"]).sum()) > 0
    for leaf in jax.tree.leaves(g["trunk"]) + [g["frequencies"], g["log_input_scale"]]:
        assert float(jnp.abs(leaf).sum()) == 0.0


def test_bad_configuration_errors():
    with pytest.raises(ValueError, match="even"):
        HetStatPolicy(action_dim=1, features=7).init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    with pytest.raises(ValueError, match="activation"):
        HetStatPolicy(action_dim=1, activation="relu").init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    with pytest.raises(ValueError, match="policy kind"):
        make_policy("transformer", 2)


def _toy_data():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (256, 1)).astype(np.float32)
    y = (0.6 * np.sin(3 * x) + 0.05 * rng.normal(size=x.shape)).astype(np.float32)
    return x, y


def test_hetstat_std_reverts_far_from_data_but_mlp_does_not():
    """Acceptance: after BC on data in [-1, 1], HetStat's std far away is >= 5x its std on the data; MLP's is not."""
    x, y = _toy_data()
    far = np.array([[-6.0], [-4.0], [4.0], [6.0]], np.float32)
    ratios = {}
    for name, pol in [
        ("hetstat", HetStatPolicy(1, hidden=(64, 64), features=128)),
        ("mlp", MLPPolicy(1, hidden=(64, 64))),
    ]:
        res = train_bc(pol, x, y, steps=3000, seed=0, progress=False)
        mean_in, std_in = pol.apply(res.params, x)
        _, std_far = pol.apply(res.params, far)
        assert float(jnp.mean((jnp.tanh(mean_in) - y) ** 2)) < 0.01  # both fit the data
        ratios[name] = float(jnp.mean(std_far) / jnp.mean(std_in))
    print("std ratio far/on-data:", ratios)
    assert ratios["hetstat"] >= 5.0
    assert ratios["mlp"] < 5.0

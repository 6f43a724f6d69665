import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from csil_lite.coherent import policy_reward  # noqa: E402
from csil_lite.nets import HetStatPolicy, MLPPolicy  # noqa: E402
from csil_lite import plotting_uncertainty as pu  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_band_is_exact_quantiles_of_the_squashed_gaussian():
    mean, std = np.array([0.3, -1.2]), np.array([0.5, 0.2])
    mode, lo, hi = pu.tanh_gaussian_band(mean, std, n_std=2.0)
    np.testing.assert_allclose(mode, np.tanh(mean))
    samples = np.tanh(mean + std * np.random.default_rng(0).normal(size=(200_000, 2)))
    below = (samples < lo).mean(axis=0)
    above = (samples > hi).mean(axis=0)
    np.testing.assert_allclose(below, 0.02275, atol=2e-3)  # Phi(-2)
    np.testing.assert_allclose(above, 0.02275, atol=2e-3)
    assert np.all(lo >= -1) and np.all(hi <= 1)


def test_band_rejects_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        pu.tanh_gaussian_band(np.zeros(3), np.ones(2))
    with pytest.raises(ValueError, match="std must be >= 0"):
        pu.tanh_gaussian_band(np.zeros(2), -np.ones(2))


def test_predictive_band_artists_follow_sorted_inputs():
    x = np.array([2.0, -1.0, 0.5])
    mean, std = np.array([0.1, 0.2, 0.3]), np.array([0.1, 0.1, 0.1])
    fig, ax = plt.subplots()
    out = pu.plot_predictive_band(ax, x[:, None], mean[:, None], std, data=(x, np.tanh(mean)), label="m")
    assert set(out) == {"line", "band", "data"}
    lx, ly = out["line"].get_data()
    np.testing.assert_allclose(lx, [-1.0, 0.5, 2.0])
    np.testing.assert_allclose(ly, np.tanh([0.2, 0.3, 0.1]), rtol=1e-6)
    with pytest.raises(ValueError, match="must match"):
        pu.plot_predictive_band(ax, x, mean[:2], std[:2])


def test_grid_points_row_major_in_y_then_x():
    xs, ys, pts = pu.grid_points((-1, 1), (0, 2), n=(3, 4))
    assert xs.shape == (3,) and ys.shape == (4,) and pts.shape == (12, 2)
    k = 7
    np.testing.assert_allclose(pts[k], [xs[k % 3], ys[k // 3]])
    with pytest.raises(ValueError, match="at least 2"):
        pu.grid_points((0, 1), (0, 1), n=1)


def test_std_on_grid_orientation_matches_direct_evaluation():
    policy = HetStatPolicy(1, hidden=(8,), bottleneck=3, features=8, init_log_input_scale=0.0)
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    xs, ys = np.array([-2.0, 0.0, 3.0], np.float32), np.array([-1.0, 1.0], np.float32)
    grid = pu.std_on_grid(policy, params, xs, ys)
    assert grid.shape == (2, 3)
    _, std = policy.apply(params, jnp.array([[xs[2], ys[1]]]))
    np.testing.assert_allclose(grid[1, 2], float(std[0, 0]), rtol=1e-5)
    assert np.ptp(grid) > 0  # not a constant map, so orientation is actually tested
    with pytest.raises(ValueError, match="action_index"):
        pu.std_on_grid(policy, params, xs, ys, action_index=1)


@pytest.mark.parametrize("variant", ["pos", "neg"])
def test_reward_landscape_is_all_pairs(variant):
    policy = MLPPolicy(1, hidden=(8,))
    params = policy.init(jax.random.PRNGKey(1), jnp.zeros((1, 1)))
    states = np.array([[-1.0], [0.0], [2.0]], np.float32)
    actions = np.array([[-0.5], [0.9]], np.float32)
    land = pu.reward_landscape(policy, params, states, actions, variant=variant)
    assert land.shape == (2, 3)
    direct = policy_reward(policy, params, jnp.array([[2.0]]), jnp.array([[-0.5]]), variant=variant)
    np.testing.assert_allclose(land[0, 2], float(direct[0]), rtol=1e-5)
    with pytest.raises(ValueError, match="obs"):
        pu.reward_landscape(policy, params, states[:, 0], actions)


def test_heatmap_keeps_values_and_marks_saturation():
    xs, ys = np.arange(3.0), np.arange(2.0)
    values = np.array([[-100.0, 0.0, 1.0], [2.0, 3.0, 0.5]])
    fig, ax = plt.subplots()
    out = pu.plot_reward_landscape(ax, xs, ys, values, vmin=-5.0)
    np.testing.assert_allclose(np.asarray(out["mesh"].get_array()).reshape(2, 3), values)
    assert isinstance(out["mesh"].norm, TwoSlopeNorm) and out["mesh"].norm.vcenter == 0.0
    assert out["colorbar"].extend == "min"
    with pytest.raises(ValueError, match="values shape"):
        pu.plot_heatmap(ax, xs, ys, values.T)
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        pu.plot_std_heatmap(ax, xs, ys, np.abs(values) / 100, data=np.zeros((4, 3)))


def test_new_figure_shape():
    fig, axes = pu.new_figure(2, 3)
    assert axes.shape == (2, 3)

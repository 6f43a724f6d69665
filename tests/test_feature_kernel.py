"""The kernel of HetStat's +-pi/4 phase-pair features: exactly stationary for sin + cos only."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from csil_lite.nets import HetStatPolicy
from csil_lite.nets.layers import PERIODIC_ACTIVATIONS, feature_kernel, phase_pair_features

H = jnp.linspace(-3.0, 3.0, 121)[:, None]  # scaled 1-D bottleneck values h * exp(l)


def _frequencies(n: int, k: int = 1, seed: int = 0) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(seed), (k, n))


def test_sin_cos_kernel_is_exactly_stationary_for_any_frequencies():
    w = _frequencies(64)  # a small, fixed draw: the identity holds per frequency, not only in expectation
    k_hh = np.asarray(feature_kernel(H, H, w, "sin"))
    np.testing.assert_allclose(k_hh, 1.0, atol=1e-5)
    for delta in (0.3, 1.0):
        k_shift = np.asarray(feature_kernel(H, H + delta, w, "sin"))
        assert np.ptp(k_shift) < 1e-5, (delta, np.ptp(k_shift))
        # f(h)^T f(h') = (1/(D/2)) sum_j cos(w_j (h - h')) for this very draw
        np.testing.assert_allclose(k_shift, np.mean(np.cos(np.asarray(w[0]) * delta)), atol=1e-5)


def test_sin_cos_kernel_approaches_the_squared_exponential():
    w = _frequencies(1 << 16)
    deltas = jnp.array([0.0, 0.5, 1.0, 2.0])
    k = np.asarray(feature_kernel(jnp.zeros((4, 1)), deltas[:, None], w, "sin"))
    np.testing.assert_allclose(k, np.exp(-0.5 * np.asarray(deltas) ** 2), atol=0.02)


@pytest.mark.parametrize("activation", ["triangle", "prelu"])
def test_triangle_and_periodic_relu_kernels_are_not_stationary(activation):
    w = _frequencies(1 << 14)  # many frequencies: close to the expected kernel, so the variation is not noise
    k_hh = np.asarray(feature_kernel(H, H, w, activation))
    # At h = 0 every z is 0, so k(0, 0) = (psi(pi/4)^2 + psi(-pi/4)^2) / 2 exactly, for any frequencies.
    psi = PERIODIC_ACTIVATIONS[activation]
    at_zero = (float(psi(jnp.pi / 4)) ** 2 + float(psi(-jnp.pi / 4)) ** 2) / 2
    assert k_hh[60] == pytest.approx(at_zero, abs=1e-5)
    assert at_zero == pytest.approx(np.pi**4 / 128, abs=1e-5)  # both: 0.761
    # Far from 0 the phases spread over a period and k(h, h) approaches the mean square (~1).
    assert abs(k_hh[0] - 1.0) < 0.05 and abs(k_hh[-1] - 1.0) < 0.05
    assert np.ptp(k_hh) > 0.2
    k_shift = np.asarray(feature_kernel(H, H + 0.5, w, activation))
    assert np.ptp(k_shift) > 0.1


def test_periodic_relu_pair_is_a_rotation_of_the_triangle_pair():
    """T(x + pi) = -T(x) makes the periodic-ReLU phase pair a 45-degree rotation of the triangle pair."""
    w = _frequencies(256, k=2, seed=3)
    x = jax.random.normal(jax.random.PRNGKey(4), (50, 2))
    y = jax.random.normal(jax.random.PRNGKey(5), (50, 2))
    np.testing.assert_allclose(
        np.asarray(feature_kernel(x, y, w, "prelu")), np.asarray(feature_kernel(x, y, w, "triangle")), atol=1e-5
    )
    f_t, f_p = phase_pair_features(x, w, "triangle"), phase_pair_features(x, w, "prelu")
    assert float(jnp.max(jnp.abs(f_t - f_p))) * np.sqrt(512) > 0.5  # different features, same inner products


def test_phase_pair_features_are_the_hetstat_layer():
    pol = HetStatPolicy(action_dim=1, hidden=(16,), bottleneck=3, features=10, activation="prelu")
    obs = jax.random.normal(jax.random.PRNGKey(2), (5, 4))
    params = pol.init(jax.random.PRNGKey(0), obs)
    p = params["params"]
    h = pol.apply(params, obs, method=lambda m, o: m.trunk(o))
    expected = pol.apply(params, obs, method=HetStatPolicy.stationary_features)
    got = phase_pair_features(h * jnp.exp(p["log_input_scale"]), p["frequencies"], "prelu")
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-6)


def test_feature_kernel_shape_errors():
    with pytest.raises(ValueError, match="frequencies"):
        feature_kernel(jnp.zeros((3, 2)), jnp.zeros((3, 2)), jnp.zeros((5, 4)))
    with pytest.raises(ValueError, match="activation"):
        feature_kernel(jnp.zeros((3, 1)), jnp.zeros((3, 1)), jnp.zeros((1, 4)), "relu")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from csil_lite.distributions import THRESHOLD, latent_kl, max_log_prob_per_dim, tanh_normal

jax.config.update("jax_enable_x64", False)


@pytest.mark.parametrize("loc,scale", [(0.0, 0.5), (1.2, 0.3), (-2.5, 1.0), (3.5, 0.2)])
def test_density_integrates_to_one_including_clipped_tails(loc, scale):
    """Change of variables inside the clip plus the averaged tail mass outside must integrate to 1 on [-1, 1]."""
    d = tanh_normal(jnp.array([loc]), jnp.array([scale]))
    # Fine grid inside the clip (trapezoid in u = atanh(a) space is exact enough and avoids the endpoint spike).
    u = np.linspace(np.arctanh(-THRESHOLD), np.arctanh(THRESHOLD), 200_001)
    a = np.tanh(u)
    dens = np.exp(np.asarray(d.log_prob(jnp.asarray(a[:, None], jnp.float32)), np.float64))
    inside = np.trapezoid(dens * (1 - a**2), u)  # da = (1 - a^2) du
    eps = 1 - THRESHOLD
    tails = (np.exp(float(d.log_prob(jnp.array([1.0])))) + np.exp(float(d.log_prob(jnp.array([-1.0]))))) * eps
    assert inside + tails == pytest.approx(1.0, abs=2e-3)


def test_log_prob_matches_change_of_variables_inside():
    loc, scale = jnp.array([0.3, -0.7]), jnp.array([0.4, 0.9])
    a = jnp.array([0.25, -0.8])
    u = jnp.arctanh(a)
    expected = jnp.sum(jax.scipy.stats.norm.logpdf(u, loc, scale) - jnp.log(1 - a**2))
    assert float(tanh_normal(loc, scale).log_prob(a)) == pytest.approx(float(expected), rel=1e-5)


def test_boundary_actions_have_finite_log_prob_and_gradients():
    loc, scale = jnp.zeros(3), jnp.full(3, 0.3)
    a = jnp.array([1.0, -1.0, 0.9995])
    lp = tanh_normal(loc, scale).log_prob(a)
    assert np.isfinite(float(lp))
    g = jax.grad(lambda m: tanh_normal(m, scale).log_prob(a))(loc)
    assert np.all(np.isfinite(np.asarray(g)))
    # Pushing the mean towards +1 must raise the log-prob of the +1 action (tail mass grows).
    assert float(g[0]) > 0 and float(g[1]) < 0


def test_exact_kl_matches_monte_carlo():
    key = jax.random.PRNGKey(0)
    lp, sp = jnp.array([0.2, -0.4, 0.5]), jnp.array([0.3, 0.5, 0.25])
    lq, sq = jnp.array([0.0, -0.1, 0.3]), jnp.array([0.4, 0.6, 0.35])
    p, q = tanh_normal(lp, sp), tanh_normal(lq, sq)
    a = p.sample(seed=key, sample_shape=(400_000,))
    mc = jnp.mean(p.log_prob(a) - q.log_prob(a))
    exact = latent_kl(lp, sp, lq, sq)
    assert float(mc) == pytest.approx(float(exact), rel=0.03)
    assert float(latent_kl(lp, sp, lp, sp)) == pytest.approx(0.0, abs=1e-7)


def test_log_prob_never_exceeds_strict_bound():
    min_scale = 0.0027
    bound = max_log_prob_per_dim(min_scale)
    key = jax.random.PRNGKey(1)
    loc = jax.random.normal(key, (20000, 1)) * 4
    a = jnp.clip(jnp.tanh(loc + jax.random.normal(jax.random.PRNGKey(2), loc.shape) * 0.01), -1, 1)
    lp = tanh_normal(loc, jnp.full_like(loc, min_scale)).log_prob(a)
    assert float(jnp.max(lp)) <= bound + 1e-4


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="loc shape"):
        tanh_normal(jnp.zeros(3), jnp.ones(2))


def test_mode_is_tanh_of_mean():
    loc = jnp.array([0.5, -2.0])
    d = tanh_normal(loc, jnp.ones(2))
    np.testing.assert_allclose(np.asarray(d.distribution.mode()), np.tanh(np.asarray(loc)), rtol=1e-6)

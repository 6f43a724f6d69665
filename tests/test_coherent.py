import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from csil_lite.coherent import (
    REFERENCE_MAX_REWARD,
    coherent_reward,
    max_reward,
    policy_reward,
    refinement_loss,
    refinement_step,
    reward_upper_bound,
    value_clip,
)
from csil_lite.distributions import tanh_normal
from csil_lite.nets import HetStatPolicy, MLPPolicy


def _random_policy_outputs(key, n, d, min_std):
    k1, k2, k3 = jax.random.split(key, 3)
    loc = jax.random.normal(k1, (n, d)) * 3.0
    std = min_std + jnp.abs(jax.random.normal(k2, (n, d))) * jnp.where(jax.random.bernoulli(k3, 0.5, (n, d)), 1e-3, 0.5)
    return loc, std


@pytest.mark.parametrize("min_std", [HetStatPolicy(1).min_std, MLPPolicy(1).min_std])
@pytest.mark.parametrize("d", [1, 2, 7])
def test_reward_never_exceeds_its_bound(min_std, d):
    key = jax.random.PRNGKey(d)
    loc, std = _random_policy_outputs(key, 20_000, d, min_std)
    # Adversarial actions: near the mode (highest density) and at/near the boundary.
    ka, kb = jax.random.split(key)
    near_mode = jnp.tanh(loc + std * 0.01 * jax.random.normal(ka, loc.shape))
    boundary = jnp.sign(jax.random.normal(kb, loc.shape)) * jnp.array([1.0, 0.9989, 0.999, 0.99])[
        jax.random.randint(kb, loc.shape, 0, 4)
    ]
    for a in (near_mode, boundary):
        log_q = tanh_normal(loc, std).log_prob(a)
        r_pos = coherent_reward(log_q, d, min_std=min_std, variant="pos")
        r_neg = coherent_reward(log_q, d, min_std=min_std, variant="neg")
        assert float(jnp.max(r_pos)) <= reward_upper_bound(min_std, variant="pos") + 1e-4
        assert float(jnp.max(r_neg)) <= 1e-4
        small = np.abs(np.asarray(r_pos)) < 100  # float32 cancellation aside, the shift is the bound
        np.testing.assert_allclose(np.asarray(r_pos - r_neg)[small], max_reward(min_std), rtol=1e-5)


def test_reference_constant_is_not_a_true_bound_but_ours_is():
    """The reference's MAX_REWARD ignores the tanh Jacobian; a sharp policy at a=0.998 beats it."""
    min_std = HetStatPolicy(1).min_std
    a = jnp.array([[0.998]])
    log_q = tanh_normal(jnp.arctanh(a), jnp.full_like(a, min_std)).log_prob(a)
    r = float(coherent_reward(log_q, 1, min_std=min_std)[0])
    assert r > REFERENCE_MAX_REWARD
    assert r <= max_reward(min_std) + 1e-4


def test_uniform_policy_has_zero_reward_and_scale_is_per_dimension():
    # log q = -d log 2 (uniform) gives exactly zero positive reward for any d.
    for d in (1, 3, 6):
        assert float(coherent_reward(jnp.array(-d * math.log(2)), d, min_std=0.01)) == pytest.approx(0.0, abs=1e-6)
    # alpha = 1/d: doubling the dimension with the same per-dim density keeps the reward unchanged.
    r1 = coherent_reward(jnp.array(0.5), 1, min_std=0.01)
    r2 = coherent_reward(jnp.array(1.0), 2, min_std=0.01)
    assert float(r1) == pytest.approx(float(r2))


def test_value_clip_and_errors():
    assert value_clip(0.01, 0.99) == pytest.approx(max_reward(0.01) / 0.01)
    assert value_clip(0.01, 0.99, variant="neg") == 0.0
    with pytest.raises(ValueError, match="gamma"):
        value_clip(0.01, 1.0)
    with pytest.raises(ValueError, match="variant"):
        coherent_reward(jnp.zeros(2), 1, min_std=0.01, variant="other")


def test_refinement_loss_gradient_signs():
    g_demo, g_online = jax.grad(refinement_loss, argnums=(0, 1))(jnp.array([0.5, 1.0]), jnp.array([2.0, -1.0]))
    assert np.all(np.asarray(g_demo) < 0)  # descent raises the reward on demonstrations
    assert float(g_online[0]) > 0  # positive reward on own samples is pushed down ...
    assert float(g_online[1]) < 0  # ... negative reward pushed up, towards 0
    _, g_zero = jax.grad(refinement_loss, argnums=(0, 1))(jnp.array([0.0]), jnp.array([0.0]))
    assert float(g_zero[0]) == pytest.approx(0.0, abs=1e-7)  # minimum of the KL estimator at r = 0
    assert float(refinement_loss(jnp.zeros(1), jnp.zeros(1))) == pytest.approx(0.0)


def test_refinement_step_raises_demo_reward_relative_to_online():
    pol = HetStatPolicy(1, hidden=(16,), features=16, init_log_input_scale=0.0)
    key = jax.random.PRNGKey(0)
    obs = jax.random.uniform(key, (64, 1), minval=-1, maxval=1)
    demo_a = 0.5 * obs
    online_a = -0.5 * obs
    params = pol.init(key, obs)
    opt = optax.sgd(1e-2)
    state = opt.init(params)
    gap = lambda p: float(jnp.mean(policy_reward(pol, p, obs, demo_a) - policy_reward(pol, p, obs, online_a)))  # noqa
    before = gap(params)
    step = jax.jit(lambda p, s: refinement_step(pol, opt, p, s, (obs, demo_a), (obs, online_a)))
    for _ in range(50):
        params, state, _ = step(params, state)
    assert gap(params) > before + 0.05


def test_explicit_shift_subtracts_scaled_and_clips_at_zero():
    log_q = jnp.array([-2.0, 0.0, 1.0, 3.0])  # d = 1: r_pos = log_q + log 2
    r_pos = coherent_reward(log_q, 1, min_std=0.01)
    r = coherent_reward(log_q, 1, min_std=0.01, variant="neg", shift=1.0, scale=0.5)
    np.testing.assert_allclose(np.asarray(r), np.minimum(0.5 * np.asarray(r_pos) - 0.5, 0.0), rtol=1e-6)
    assert float(r[0]) < 0 and float(r[-1]) == 0.0


class _FixedGaussian:
    """A 'policy' with the same latent Gaussian at every state: enough for policy_reward."""

    min_std = 1e-2

    def __init__(self, mean: float, std: float):
        self.mean, self.std = mean, std

    def apply(self, params, obs):
        shape = (obs.shape[0], 1)
        return jnp.full(shape, self.mean), jnp.full(shape, self.std)


def test_latent_density_is_action_density_plus_tanh_jacobian():
    from csil_lite.distributions import latent_log_prob, tanh_normal

    mean, std = jnp.array([[0.3, -1.2]]), jnp.array([[0.5, 0.1]])
    a = jnp.array([[0.7, -0.95]])
    jac = jnp.sum(jnp.log1p(-a**2))
    np.testing.assert_allclose(latent_log_prob(mean, std, a), tanh_normal(mean, std).log_prob(a) + jac, rtol=1e-5)


@pytest.mark.parametrize("mean", [-0.4, 0.0, 0.3])
def test_latent_reward_peaks_at_the_bc_action_action_reward_at_the_edges(mean):
    """Where the policy is uncertain (std 0.8), the action-space density is largest near +-1, not at tanh(mean)."""
    policy = _FixedGaussian(mean, 0.8)
    a = jnp.linspace(-0.995, 0.995, 3981)[:, None]
    obs = jnp.zeros((a.shape[0], 1))
    best = {d: float(a[jnp.argmax(policy_reward(policy, None, obs, a, density=d)), 0]) for d in ("action", "latent")}
    assert best["latent"] == pytest.approx(np.tanh(mean), abs=1e-3)
    assert abs(best["action"]) > 0.7 and abs(best["action"] - np.tanh(mean)) > 0.5
    with pytest.raises(ValueError, match="density"):
        policy_reward(policy, None, obs, a, density="log")

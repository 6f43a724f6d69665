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
    refinement_log_ratio,
    refinement_loss,
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


def _refinement_problem():
    """A small HetStat reward network and (obs, action) pairs: demonstrations a = s / 2, online actions a = -s / 2."""
    pol = HetStatPolicy(1, hidden=(16,), features=16, init_log_input_scale=0.0)
    key = jax.random.PRNGKey(0)
    obs = jax.random.uniform(key, (64, 1), minval=-1, maxval=1)
    return pol, pol.init(key, obs), (obs, 0.5 * obs), (obs, -0.5 * obs)


def _refinement_objective(pol, params, demo, online):
    """eq-ch5-refine at the log-ratio x_psi of the reward network on a demonstration and an online batch."""
    return refinement_loss(refinement_log_ratio(pol, params, *demo), refinement_log_ratio(pol, params, *online))


def test_refinement_loss_at_the_log_ratio_raises_demo_reward_relative_to_online():
    pol, params, demo, online = _refinement_problem()
    opt = optax.sgd(1e-2)
    state = opt.init(params)
    gap = lambda p: float(jnp.mean(policy_reward(pol, p, *demo) - policy_reward(pol, p, *online)))  # noqa

    @jax.jit
    def step(p, s):
        grads = jax.grad(_refinement_objective, argnums=1)(pol, p, demo, online)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s

    before = gap(params)
    for _ in range(50):
        params, state = step(params, state)
    assert gap(params) > before + 0.05


def test_agent_refinement_is_one_step_of_refinement_loss():
    """The online agent's path (`CoherentReward.reward_and_refine` on a mixed batch whose first `n_demo` rows are
    demonstrations) returns the critic's reward at the current params and takes one optimiser step of
    `refinement_loss` at `refinement_log_ratio`; repeated, it raises the demonstrations' reward."""
    from csil_lite.agents.components import CoherentReward
    from csil_lite.agents.state import TrainState
    from csil_lite.data.transitions import Transitions

    pol, variables, demo, online = _refinement_problem()
    obs, action = (jnp.concatenate([d, o]) for d, o in zip(demo, online))
    zeros = jnp.zeros(obs.shape[0])
    batch = Transitions(obs=obs, action=action, reward=zeros, next_obs=obs, next_action=action, terminal=zeros,
                        last=zeros)
    reward = CoherentReward(pol, variant="neg", scale=0.5, shift=None, density="action", refines=True,
                            kl_weight=1.0, n_demo=demo[0].shape[0])
    opt = optax.sgd(1e-2)
    state = TrainState.create(variables, opt)

    loss, grads = jax.value_and_grad(lambda p: _refinement_objective(pol, {"params": p}, demo, online))(state.params)
    updates, _ = opt.update(grads, state.opt_state, state.params)
    expected = optax.apply_updates(state.params, updates)
    r, refined, metrics = jax.jit(reward.reward_and_refine)(state, batch)
    assert float(metrics["reward_loss"]) == pytest.approx(float(loss), rel=1e-5)
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), refined.params, state.params))
    assert max(moved) > 1e-4  # the step changes the params ...
    for got, want in zip(jax.tree.leaves(refined.params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-7)  # ... by that step
    # The reward it returns is the critic's (shifted, scaled) reward at the params before the step.
    np.testing.assert_allclose(np.asarray(r), np.asarray(policy_reward(pol, variables, obs, action, variant="neg",
                                                                       scale=0.5)), rtol=1e-5, atol=1e-6)
    assert float(jnp.max(r)) <= 0.0

    gap = lambda v: float(jnp.mean(policy_reward(pol, v, *demo) - policy_reward(pol, v, *online)))  # noqa
    step = jax.jit(lambda s: reward.reward_and_refine(s, batch)[1])
    for _ in range(50):
        refined = step(refined)
    assert gap(refined.variables) > gap(variables) + 0.05


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

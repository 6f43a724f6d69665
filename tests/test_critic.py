"""CSIL++ critic pieces: categorical head on a non-uniform support, BN joint pass, WN projection, twin critics."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from csil_lite.nets.critic import NormalisedCritic, critic_ensemble, joint_forward, unit_fan_in
from csil_lite.nets.heads import (CategoricalHead, ScalarHead, cell_widths, discounted_returns, project,
                                  quantile_support)

OBS, ACT, B = 3, 2, 16


def _support(seed=0, k=21):
    rng = np.random.default_rng(seed)
    return jnp.asarray(np.sort(np.concatenate([[-8.0, 0.0], rng.uniform(-8, 0, k - 2)])), jnp.float32)


def test_projection_keeps_mass_and_mean_on_a_non_uniform_support():
    z = _support()
    key1, key2 = jax.random.split(jax.random.PRNGKey(0))
    probs = jax.nn.softmax(jax.random.normal(key1, (5, 30)), axis=-1)
    values = jax.random.uniform(key2, (5, 30), minval=-8.0, maxval=0.0)  # in range
    out = project(values, probs, z)
    np.testing.assert_allclose(np.asarray(out.sum(-1)), 1.0, atol=1e-5)
    assert float(out.min()) >= 0.0
    np.testing.assert_allclose(np.asarray(out @ z), np.asarray(jnp.sum(probs * values, -1)), atol=1e-4)
    # A value exactly at an atom lands on that atom alone; clipped mass ends on the end atoms.
    at = project(z[None, 7:8], jnp.ones((1, 1)), z)
    assert float(at[0, 7]) == pytest.approx(1.0, abs=1e-6)
    ends = project(jnp.array([[-20.0, 5.0]]), jnp.array([[0.25, 0.75]]), z)
    np.testing.assert_allclose(np.asarray(ends[0, [0, -1]]), [0.25, 0.75], atol=1e-6)


def test_quantile_support_strictly_increasing_even_for_degenerate_sparse_returns():
    # Sparse -1 per step with success termination: returns take a handful of values, most quantiles repeat.
    ep_rewards = [np.full(n, -1.0) for n in (3, 3, 3, 40, 200)]
    last = np.concatenate([np.eye(1, len(r), len(r) - 1)[0] for r in ep_rewards])
    returns = discounted_returns(np.concatenate(ep_rewards), last, 0.99)
    np.testing.assert_allclose(returns[:3], [-(1 + 0.99 + 0.99**2), -1.99, -1.0])
    for sample in (returns, np.full(50, -1.0), np.zeros(10)):
        z = np.asarray(quantile_support(sample, n_atoms=101))
        assert z.shape == (101,) and z[0] == -8.0 and z[-1] == 0.0
        assert np.all(np.diff(z) >= 0.1 * 8.0 / 100 - 1e-9)  # the documented minimum gap
        head = CategoricalHead(tuple(z))
        t = head.bellman_target(jnp.array([-1.0]), jnp.array([0.0]), jnp.zeros((1, 101)), jnp.zeros(1),
                                gamma=0.99, beta=0.0, ceiling=0.0)
        assert np.all(np.isfinite(np.asarray(t))) and float(t.sum()) == pytest.approx(1.0, abs=1e-5)
    # Many uniform samples: the quantiles approach the uniform grid.
    z = np.asarray(quantile_support(np.random.default_rng(0).uniform(-8, 0, 200_000)))
    np.testing.assert_allclose(z, np.linspace(-8, 0, 101), atol=0.05)


@pytest.mark.parametrize("w", [0.25, 0.5, 1.0])
def test_quantile_support_leaves_no_wide_bin_below_the_returns(w):
    # Issue 23's case (chapter 6's toy task, seed 0): the demonstrations' returns all lie in [-72.6, 0], the floor
    # is -612.7, and the online critic's Q values fall in between (-170 to -300). The former rule put one atom at
    # the floor and the next at -125 (a bin of 40 % of the range); the mixture with U bounds every gap.
    rng = np.random.default_rng(0)
    returns = -np.abs(rng.gamma(2.0, 8.0, 2_000))
    returns = returns[returns > -72.6]
    v_min, k, e = -612.7, 101, 0.1
    z = np.asarray(quantile_support(returns, k, v_min, 0.0, uniform_weight=w))
    gap_bound = (-v_min) / (k - 1) * ((1 - e) / w + e)
    assert np.diff(z).max() <= gap_bound * (1 + 1e-3) and np.diff(z).min() >= e * (-v_min) / (k - 1) - 1e-9
    assert cell_widths(z).max() <= gap_bound * (1 + 1e-3)
    inside = np.mean((z >= returns.min()) & (z <= 0.0))  # most atoms still sit where the returns are
    assert inside >= (1 - w) * (1 - e) - 0.02, inside
    # every value between the floor and the returns has a bin of at most 2 % (w = 0.5) of the range around it
    q = np.linspace(-300.0, -170.0, 50)
    holding = np.abs(q[:, None] - z[None, :]).argmin(axis=1)
    if w >= 0.5:
        assert cell_widths(z)[holding].max() <= 0.02 * (-v_min), cell_widths(z)[holding].max()


def test_bin_stats_see_mass_piled_into_a_wide_bin():
    z = (-100.0, -10.0, -5.0, -1.0, 0.0)  # cells 45, 47.5, 4.5, 2.5, 0.5 (of 100)
    head = CategoricalHead(z)
    piled = jnp.log(jnp.array([[0.8, 0.05, 0.05, 0.05, 0.05]] * 3))  # most mass on the widest cell
    stats = {k: float(v) for k, v in head.bin_stats(piled).items()}
    assert stats["q_top_bin_mass"] == pytest.approx(0.8, abs=1e-5) and stats["q_top_bin_width"] == pytest.approx(0.45)
    assert stats["q_bin_width"] == pytest.approx(0.8 * 0.45 + 0.05 * (0.475 + 0.045 + 0.025 + 0.005), abs=1e-5)
    spread = jnp.log(jnp.array([[0.01, 0.01, 0.48, 0.48, 0.02]]))  # on the narrow cells
    assert float(head.bin_stats(spread)["q_bin_width"]) == pytest.approx(0.04295, abs=1e-5)
    # an ensemble [2, B, K] averages both critics
    both = jnp.stack([piled, jnp.log(jnp.full((3, 5), 0.2))])
    assert float(head.bin_stats(both)["q_top_bin_mass"]) == pytest.approx((0.8 + 0.2) / 2, abs=1e-5)


def test_cell_widths_partition_the_range():
    z = np.array([-10.0, -4.0, -1.0, 0.0])
    np.testing.assert_allclose(cell_widths(z), [3.0, 4.5, 2.0, 0.5])
    assert cell_widths(z).sum() == pytest.approx(10.0)


def test_categorical_target_shifts_atoms_and_keeps_the_expected_bellman_backup():
    z = _support(1, 51)
    head = CategoricalHead(tuple(float(x) for x in z))
    logits = jax.random.normal(jax.random.PRNGKey(3), (4, 51))
    r, d, kl = jnp.array([-0.1, -0.2, -0.05, -0.3]), jnp.array([0.0, 0.0, 1.0, 0.0]), jnp.array([0.1, 0.0, 0.2, 0.3])
    t = head.bellman_target(r, d, logits, kl, gamma=0.9, beta=0.5, ceiling=0.0)
    v = head.value(logits)
    expected = r + 0.9 * (1 - d) * (v - 0.5 * kl)
    # Every shifted atom stays inside [-8, 0] here, so the projection keeps the expected backup exactly.
    assert float(head.clipped_fraction(r, d, kl, gamma=0.9, beta=0.5)) == 0.0
    np.testing.assert_allclose(np.asarray(t @ z), np.asarray(expected), atol=1e-4)
    # With gamma = 1 and a large KL the bottom atoms leave the support and are clipped onto it.
    assert float(head.clipped_fraction(r, d, kl * 40, gamma=1.0, beta=0.5)) > 0.0
    assert np.all(np.asarray(t @ z) <= 0.0 + 1e-6)
    loss, grad = jax.value_and_grad(lambda o: head.loss(o, t))(logits)
    np.testing.assert_allclose(np.asarray(grad), np.asarray((jax.nn.softmax(logits) - t) / 4), atol=1e-6)


def test_twin_critic_target_takes_the_lower_critic():
    ens = critic_ensemble(NormalisedCritic, 2, hidden=(8,), norm="layer")
    obs, act = jnp.ones((B, OBS)), jnp.zeros((B, ACT))
    v = ens.init(jax.random.PRNGKey(0), obs, act)
    out = ens.apply(v, obs, act)
    assert out.shape == (2, B) and not np.allclose(out[0], out[1])  # independent initialisations
    zeros = jnp.zeros(B)
    t = ScalarHead().bellman_target(zeros, zeros, out, zeros, gamma=1.0 - 1e-6, beta=0.0, ceiling=np.inf)
    np.testing.assert_allclose(np.asarray(t), np.asarray(jnp.min(out, axis=0)) * (1 - 1e-6), rtol=1e-5)
    # Categorical: each sample takes the distribution of the critic with the lower expected value.
    z = _support(2, 11)
    head = CategoricalHead(tuple(float(x) for x in z))
    logits = jax.random.normal(jax.random.PRNGKey(4), (2, 5, 11)) * 3
    t = head.bellman_target(jnp.zeros(5), jnp.zeros(5), logits, jnp.zeros(5), gamma=1.0, beta=0.0, ceiling=0.0)
    lower = np.argmin(np.asarray(head.value(logits)), axis=0)
    np.testing.assert_allclose(np.asarray(t), np.asarray(jax.nn.softmax(logits, -1))[lower, np.arange(5)], atol=1e-5)


def _bn_critic():
    critic = NormalisedCritic(hidden=(16, 16), norm="batch_weight", outputs=1)
    rng = np.random.default_rng(0)
    obs, act = jnp.asarray(rng.normal(size=(B, OBS)), jnp.float32), jnp.asarray(rng.uniform(-1, 1, (B, ACT)), jnp.float32)
    nobs = obs + 3.0  # next states from another distribution, as s' is for the online critic
    nact = -act
    return critic, critic.init(jax.random.PRNGKey(0), obs, act), obs, act, nobs, nact


def test_joint_pass_batch_statistics_differ_from_separate_passes():
    critic, v, obs, act, nobs, nact = _bn_critic()
    q, q_next, joint_stats = joint_forward(critic, v, obs, act, nobs, nact)
    q_sep, up = critic.apply(v, obs, act, train=True, mutable=["batch_stats"])
    assert q.shape == q_next.shape == (B,)
    assert not np.allclose(np.asarray(q), np.asarray(q_sep), atol=1e-4)  # normalised by the mixture's statistics
    mean_joint = np.asarray(joint_stats["BatchNorm_0"]["mean"])
    mean_sep = np.asarray(up["batch_stats"]["BatchNorm_0"]["mean"])
    assert not np.allclose(mean_joint, mean_sep)
    # The joint pass is exactly one train-mode apply on the concatenated batch.
    both, up2 = critic.apply(v, jnp.concatenate([obs, nobs]), jnp.concatenate([act, nact]), train=True,
                             mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(jnp.concatenate([q, q_next])), np.asarray(both), rtol=1e-6)


def test_eval_mode_leaves_batch_statistics_unchanged():
    critic, v, obs, act, _, _ = _bn_critic()
    _, up = critic.apply(v, obs, act, train=False, mutable=["batch_stats"])
    for a, b in zip(jax.tree.leaves(up["batch_stats"]), jax.tree.leaves(v["batch_stats"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    _, up = critic.apply(v, obs, act, train=True, mutable=["batch_stats"])
    assert any(not np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(jax.tree.leaves(up["batch_stats"]), jax.tree.leaves(v["batch_stats"])))


def test_unit_fan_in_norms_after_an_optimiser_step():
    critic, v, obs, act, nobs, nact = _bn_critic()
    ens = critic_ensemble(NormalisedCritic, 2, hidden=(16, 16), norm="batch_weight", outputs=5)
    for module in (critic, ens):
        variables = module.init(jax.random.PRNGKey(1), obs, act)
        params = unit_fan_in(variables["params"])
        tx = optax.adam(1e-2)
        opt = tx.init(params)

        def loss(p):
            out, _ = module.apply({"params": p, "batch_stats": variables["batch_stats"]}, obs, act, True,
                                  mutable=["batch_stats"])
            return jnp.mean(jnp.square(out - 1.0))

        updates, opt = tx.update(jax.grad(loss)(params), opt, params)
        stepped = optax.apply_updates(params, updates)
        projected = unit_fan_in(stepped)
        kernels = [(p, leaf) for p, leaf in jax.tree_util.tree_leaves_with_path(projected)
                   if getattr(p[-1], "key", "") == "kernel"]
        assert len(kernels) == 3
        for _, k in kernels:
            np.testing.assert_allclose(np.asarray(jnp.linalg.norm(k, axis=-2)), 1.0, rtol=1e-5)
        # Biases and BN parameters untouched by the projection.
        for p, leaf in jax.tree_util.tree_leaves_with_path(stepped):
            if getattr(p[-1], "key", "") != "kernel":
                got = projected
                for part in p:
                    got = got[part.key]
                np.testing.assert_array_equal(np.asarray(got), np.asarray(leaf))


def test_ensemble_batch_norm_modes_are_honoured():
    """Under nn.vmap `train` must be positional: train mode updates each member's statistics, eval mode none."""
    ens = critic_ensemble(NormalisedCritic, 2, hidden=(8,), norm="batch")
    _, v, obs, act, nobs, nact = _bn_critic()
    v = ens.init(jax.random.PRNGKey(0), obs, act)
    q, q_next, stats = joint_forward(ens, v, obs, act, nobs, nact)
    assert q.shape == q_next.shape == (2, B)
    changed = [not np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(v["batch_stats"]))]
    assert all(changed)
    _, up = ens.apply(v, obs, act, False, mutable=["batch_stats"])
    for a, b in zip(jax.tree.leaves(up["batch_stats"]), jax.tree.leaves(v["batch_stats"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sarsa_fit_against_known_returns():
    """sarsa_fit compares Q with the discounted returns: a critic that outputs the return exactly has error 0 and
    correlation 1; one that outputs half of it has relative error 0.5; time-out ends are left out."""
    import flax.linen as nn
    import numpy as np

    from csil_lite.data.transitions import Transitions
    from csil_lite.agents.critic import Critic
    from csil_lite.nets.heads import ScalarHead, discounted_returns
    from csil_lite.pretrain.critic import sarsa_fit

    class ReadsObs(nn.Module):  # Q(s, a) = scale * s[0]
        scale: float = 1.0

        @nn.compact
        def __call__(self, obs, action):
            return self.scale * obs[..., 0]

    rng = np.random.default_rng(0)
    r = -rng.uniform(0.1, 2.0, size=12).astype(np.float32)
    last = np.zeros(12, np.float32); last[[4, 11]] = 1
    terminal = np.zeros(12, np.float32); terminal[4] = 1  # episode 2 (rows 5-11) ends by a time limit
    g = discounted_returns(r, last, 0.9)
    obs = np.stack([g, np.zeros(12)], 1).astype(np.float32)
    act = np.zeros((12, 2), np.float32)
    demos = Transitions(obs, act, r, obs, act, terminal, last)
    fit = sarsa_fit(Critic(ReadsObs(), ScalarHead()), {}, demos, r, 0.9)
    assert fit.rel_error < 1e-6 and abs(fit.corr - 1) < 1e-6
    keep = np.r_[0:11]  # every row but the time-out end
    assert abs(fit.return_mean - g[keep].mean()) < 1e-5
    half = sarsa_fit(Critic(ReadsObs(scale=0.5), ScalarHead()), {}, demos, r, 0.9)
    assert abs(half.rel_error - 0.5) < 1e-5 and abs(half.corr - 1) < 1e-6


def test_csilpp_support_covers_the_values_of_bc_rollouts():
    """The support `prepare` resolves for CSIL++ on chapter 6's toy task (10 demonstrations) holds the discounted
    coherent-reward returns of the BC policy's own (sampled) rollouts, each in a bin of at most 2.5 % of the
    range. The former placement (quantiles of the demonstrations' returns only) put every value below the
    demonstrations' lowest return into one bin of about 40 % of the range."""
    from csil_lite.configs import preset
    from csil_lite.loop import prepare
    from csil_lite.probes import rollout_returns

    cfg = preset("preview", algo="csilpp", task="pointmass-obstacles", num_demos=10, bc_steps=1_000,
                 critic_pretrain_steps=0)
    setup = prepare(cfg, progress=False)
    atoms = np.asarray(setup.agent.critic.head.atoms)
    returns = rollout_returns(setup.agent, setup.state, cfg.task, episodes=6, seed=100)
    assert returns.size > 6 * 20 and np.all(np.isfinite(returns))
    v_range = atoms[-1] - atoms[0]
    assert np.mean((returns >= atoms[0]) & (returns <= atoms[-1])) >= 0.9, (returns.min(), atoms[0])
    holding = np.abs(np.clip(returns, atoms[0], atoms[-1])[:, None] - atoms[None, :]).argmin(axis=1)
    widest = cell_widths(atoms)[holding].max() / v_range
    assert widest <= 0.025, (widest, returns.min(), atoms[:3])

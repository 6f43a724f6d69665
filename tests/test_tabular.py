"""Tests for csil_lite.tabular: closed forms of soft RL on small MDPs and the coherent-reward fixed point."""

from __future__ import annotations

import numpy as np
import pytest

from csil_lite import tabular as T


def random_mdp(seed: int = 0, S: int = 6, A: int = 3, gamma: float = 0.9) -> T.TabularMDP:
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S), size=(S, A))
    r = rng.normal(size=(S, A))
    mu0 = rng.dirichlet(np.ones(S))
    return T.make_mdp(P, r, mu0, gamma)


def random_policy(seed: int, S: int, A: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(A), size=S)


@pytest.fixture(scope="module")
def grid() -> T.TabularMDP:
    return T.gridworld()


@pytest.fixture(scope="module")
def demo_setup(grid):
    expert = T.soft_expert(grid)
    counts = T.collect_demos(grid, expert.pi, n_episodes=20, seed=0)
    return expert, counts, T.bc_policy(counts)


# ------------------------------------------------------------------------------------------ construction
def test_make_mdp_shape_errors_name_field_and_shapes():
    mdp = random_mdp()
    with pytest.raises(ValueError, match=r"P: expected shape \(S, A, S\)"):
        T.make_mdp(mdp.P[0], mdp.r, mdp.mu0, 0.9)
    with pytest.raises(ValueError, match=r"r: expected shape \(6, 3\), got \(6, 4\)"):
        T.make_mdp(mdp.P, np.zeros((6, 4)), mdp.mu0, 0.9)
    with pytest.raises(ValueError, match=r"mu0: expected shape \(6,\), got \(5,\)"):
        T.make_mdp(mdp.P, mdp.r, mdp.mu0[:5], 0.9)
    with pytest.raises(ValueError, match="gamma"):
        T.make_mdp(mdp.P, mdp.r, mdp.mu0, 1.0)


def test_make_mdp_names_the_row_that_does_not_sum_to_one():
    mdp = random_mdp()
    P = mdp.P.copy()
    P[2, 1] *= 1.5
    with pytest.raises(ValueError, match=r"P: rows must sum to 1.*row \(2, 1\) sums to 1\.5"):
        T.make_mdp(P, mdp.r, mdp.mu0, 0.9)
    P = mdp.P.copy()
    P[0, 0, 0] = -0.1
    with pytest.raises(ValueError, match="P: negative probability"):
        T.make_mdp(P, mdp.r, mdp.mu0, 0.9)
    with pytest.raises(ValueError, match="mu0: entries must sum to 1.*sum to 2"):
        T.make_mdp(mdp.P, mdp.r, 2 * mdp.mu0, 0.9)


def test_policy_and_beta_validation():
    mdp = random_mdp()
    with pytest.raises(ValueError, match=r"pi_init: expected shape \(6, 3\), got \(6, 2\)"):
        T.soft_policy_iteration(mdp, 1.0, pi_init=np.full((6, 2), 0.5))
    with pytest.raises(ValueError, match=r"beta \(temperature\): expected > 0"):
        T.soft_value_iteration(mdp, 0.0)
    with pytest.raises(ValueError, match="wind"):
        T.gridworld(wind=1.5)
    with pytest.raises(ValueError, match="success: expected 'restart' or 'absorb'"):
        T.gridworld(success="end")


def test_gridworld_matches_reference_construction(grid):
    S, A = 100, 4
    assert grid.P.shape == (S, A, S) and grid.gamma == 0.95
    np.testing.assert_allclose(grid.r[T.GOAL], 1 / (1 - 0.95))
    np.testing.assert_allclose(grid.r[T.TRAP], -1 / (1 - 0.95))
    assert np.count_nonzero(grid.r) == 2 * A
    np.testing.assert_allclose(grid.P[T.GOAL], np.tile(grid.mu0, (A, 1)))  # absorbing -> start
    # clamped moves: from (x=0, y=0), 'left' and 'down' stay put; 'right' -> 1, 'up' -> 10
    assert grid.P[0, 0, 1] == 1 and grid.P[0, 1, 0] == 1 and grid.P[0, 2, 10] == 1 and grid.P[0, 3, 0] == 1
    windy = T.gridworld(0.5)
    # reference: add a unit transition to x+1 and renormalise -> intended move w.p. 1/2, 'right' w.p. 1
    assert windy.P[55, 2, 65] == 0.5 and windy.P[55, 2, 56] == 0.5 and windy.P[55, 0, 56] == 1.0
    assert windy.P[59, 1, 58] == 0.5 and windy.P[59, 1, 59] == 0.5  # push at the right wall is clamped
    np.testing.assert_array_equal(windy.P[T.GOAL], grid.P[T.GOAL])  # goal exempt from wind


# --------------------------------------------------------------------------------------- soft operators
def test_soft_value_iteration_reaches_soft_bellman_fixed_point():
    mdp = random_mdp(1)
    prior = random_policy(2, 6, 3)
    (pi, Q, V), residuals = T.soft_value_iteration_trace(mdp, 0.5, prior, iters=400)
    np.testing.assert_allclose(T.soft_bellman_operator(mdp, Q, 0.5, prior), Q, atol=1e-10)
    np.testing.assert_allclose(V, T.soft_value(Q, 0.5, prior), atol=1e-12)
    np.testing.assert_allclose(pi, T.boltzmann_policy(Q, 0.5, prior), atol=1e-12)
    # gamma-contraction: residual k+1 <= gamma * residual k (up to round-off)
    assert np.all(residuals[1:50] <= mdp.gamma * residuals[:49] + 1e-12)
    # the Boltzmann policy is greedy for the KL-regularised objective: V = E_pi[Q] - beta KL(pi || prior)
    np.testing.assert_allclose(V, (pi * Q).sum(1) - 0.5 * T.kl_to_prior(pi, prior), atol=1e-10)


def test_soft_policy_iteration_agrees_with_value_iteration():
    mdp = random_mdp(3)
    svi = T.soft_value_iteration(mdp, 0.3, iters=600)
    (pi, Q, V), changes = T.soft_policy_iteration_trace(mdp, 0.3, iters=30)
    np.testing.assert_allclose(pi, svi.pi, atol=1e-9)
    np.testing.assert_allclose(Q, svi.Q, atol=1e-8)
    assert changes[-1] < 1e-12 and changes[0] > 1e-3


def test_temperature_to_zero_recovers_greedy_policy_and_hard_value():
    mdp = random_mdp(4, S=8, A=4)
    Q_star, V_star = T.value_iteration(mdp, iters=600)
    greedy = T.greedy_policy(Q_star)
    gaps = []
    for beta in (1.0, 0.1, 0.01, 1e-3):
        sol = T.soft_value_iteration(mdp, beta, iters=600)
        # uniform prior: V* - beta log|A| / (1 - gamma) <= V_beta <= V*
        assert np.all(sol.V <= V_star + 1e-9)
        assert np.all(sol.V >= V_star - beta * np.log(4) / (1 - mdp.gamma) - 1e-9)
        gaps.append(np.abs(sol.pi - greedy).max())
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-6


def test_policy_evaluation_closed_form():
    mdp = random_mdp(5)
    pi, prior = random_policy(6, 6, 3), random_policy(7, 6, 3)
    Q, V = T.policy_evaluation(mdp, pi, 0.2, prior)
    kl = T.kl_to_prior(pi, prior)
    np.testing.assert_allclose(V, (pi * Q).sum(1) - 0.2 * kl, atol=1e-10)
    np.testing.assert_allclose(Q, mdp.r + mdp.gamma * mdp.P @ V, atol=1e-10)
    assert np.allclose(T.kl_to_prior(prior, prior), 0.0) and np.all(kl > 0)


# ------------------------------------------------------------------------------------------ occupancy
def test_occupancy_sums_to_one_and_matches_value():
    mdp = random_mdp(8)
    pi = random_policy(9, 6, 3)
    rho = T.occupancy(mdp, pi)
    assert np.all(rho >= 0) and abs(rho.sum() - 1.0) < 1e-12
    # fixed point rho = (1 - gamma) mu0 + gamma P_pi^T rho
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    np.testing.assert_allclose(rho, (1 - mdp.gamma) * mdp.mu0 + mdp.gamma * P_pi.T @ rho, atol=1e-12)
    # two routes to the same number: occupancy-weighted reward == (1 - gamma) mu0 . V^pi
    _, V = T.policy_evaluation(mdp, pi)
    assert T.expected_return(mdp, pi) == pytest.approx((1 - mdp.gamma) * mdp.mu0 @ V, abs=1e-10)


# ------------------------------------------------------------------------------------ coherent rewards
def test_bc_policy_from_counts(demo_setup):
    _, counts, pi_bc = demo_setup
    np.testing.assert_allclose(pi_bc.sum(1), 1.0, atol=1e-12)
    unseen = counts.sum(1) == 0
    np.testing.assert_allclose(pi_bc[unseen], 0.25, atol=1e-12)  # prior out of distribution
    seen = np.flatnonzero(~unseen)
    assert np.all(np.argmax(pi_bc[seen], 1) == np.argmax(counts[seen], 1))


def test_demos_are_seeded_and_follow_greedy_expert(grid, demo_setup):
    expert, counts, _ = demo_setup
    assert counts[T.GOAL].sum() == 20  # every episode ends at the goal
    assert set(np.unique(counts[counts > 0])) == {20}  # deterministic grid + greedy expert
    a = T.collect_demos(grid, expert.pi, n_episodes=5, greedy=False, seed=3)
    b = T.collect_demos(grid, expert.pi, n_episodes=5, greedy=False, seed=3)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("alpha_r", [1.0, 0.3])
def test_bc_policy_is_spi_fixed_point_under_its_coherent_reward(grid, demo_setup, alpha_r):
    _, _, pi_bc = demo_setup
    reward = T.coherent_reward(pi_bc, None, alpha_r)
    shaped = grid._replace(r=reward)
    sol = T.soft_policy_iteration(shaped, alpha_r, iters=1, pi_init=pi_bc)
    assert np.abs(sol.pi - pi_bc).max() <= 1e-6
    np.testing.assert_allclose(sol.V, 0.0, atol=1e-9)  # soft value of the shaped problem is zero
    np.testing.assert_allclose(sol.Q, reward, atol=1e-9)  # ... so Q equals the reward
    # and it stays there when iterated, from any start
    again = T.soft_policy_iteration(shaped, alpha_r, iters=40)
    assert np.abs(again.pi - pi_bc).max() <= 1e-6


def test_coherence_with_non_uniform_prior():
    mdp = random_mdp(10)
    prior, q = random_policy(11, 6, 3), random_policy(12, 6, 3)
    shaped = mdp._replace(r=T.coherent_reward(q, prior, 0.7))
    sol = T.soft_policy_iteration(shaped, 0.7, prior, iters=1, pi_init=q)
    assert np.abs(sol.pi - q).max() <= 1e-6


def test_mismatched_temperature_moves_away_from_bc(grid, demo_setup):
    _, _, pi_bc = demo_setup
    sol, _ = T.csil_policy(grid, pi_bc, alpha=1.0, beta=1e-3)
    assert np.abs(sol.pi - pi_bc).max() > 0.5  # colder SPI sharpens pi_BC off the demonstrations


def test_maxent_irl_reduces_feature_matching_error(grid, demo_setup):
    _, counts, _ = demo_setup
    _, reward, errors = T.maxent_irl(grid, counts, iters=20, inner_iters=50)
    assert reward.shape == (100, 4) and errors[-1] < 0.5 * errors[0]


def test_windy_table_reproduces_reference_ordering():
    bench = T.gridworld_benchmark(wind=0.5, n_episodes=100, meirl=False)
    ret = bench.returns
    # reference: everyone copies the expert (1.237) without wind; under wind BC collapses (0.002),
    # CSIL and classifier IRL keep most of the expert's windy return (0.044 vs 0.052).
    for name in ("soft expert", "BC", "classifier IRL", "CSIL"):
        assert ret[name][0] == pytest.approx(1.237, abs=5e-3)
    assert ret["BC"][1] < 0.01
    assert ret["CSIL"][1] > 5 * ret["BC"][1]
    assert ret["CSIL"][1] == pytest.approx(0.044, abs=5e-3)


def test_plot_grid_smoke():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    T.plot_grid(np.arange(100.0), ax, policy=T.uniform_prior(100, 4), title="x")
    with pytest.raises(ValueError, match="values"):
        T.plot_grid(np.arange(10.0), ax)
    plt.close(fig)


def test_policy_entropy_handles_zeros():
    pi = np.array([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    np.testing.assert_allclose(T.policy_entropy(pi), [0.0, np.log(4)], atol=1e-15)


def test_collect_demos_raises_instead_of_truncating(grid):
    always_right = T.greedy_policy(np.tile([1.0, 0.0, 0.0, 0.0], (100, 1)))
    with pytest.raises(RuntimeError, match="did not reach an absorbing state"):
        T.collect_demos(grid, always_right, n_episodes=1, max_episode_steps=50)


# ------------------------------------------------------- the online objective, shifts and absorbing success
@pytest.fixture(scope="module")
def few_demos():
    """Restarting grid with a BC policy from 3 episodes: q puts 0.87 on the demonstrated action, not ~1."""
    grid = T.gridworld()
    counts = T.collect_demos(grid, T.soft_expert(grid).pi, n_episodes=3, seed=0)
    return grid, counts, T.bc_policy(counts)


@pytest.fixture(scope="module")
def success_grid():
    """Success-absorbing grid; BC from one episode, nothing recorded after success (q = p at the goal)."""
    grid = T.gridworld(success="absorb")
    expert = T.soft_value_iteration(grid, 0.1)
    counts = T.collect_demos(grid, expert.pi, n_episodes=1, seed=0, record_absorbing=False)
    return grid, counts, T.bc_policy(counts)


def _one_spi_step(mdp, q, *, alpha, beta, reference, shift=0.0):
    r = T.shifted_coherent_reward(q, None, alpha, shift, T.absorbing_states(mdp))
    ref = q if reference == "bc" else T.uniform_prior(*q.shape)
    return T.soft_policy_iteration(mdp._replace(r=r), beta, ref, iters=1, pi_init=q)


@pytest.mark.parametrize("reference", ["prior", "bc"])
@pytest.mark.parametrize("beta", [0.1, 0.5, 1.0, 3.0])
@pytest.mark.parametrize("shift", [0.0, 0.7])
def test_online_closed_form_matches_one_spi_step(few_demos, success_grid, reference, beta, shift):
    for mdp, _, q in (few_demos, success_grid):
        closed = T.online_improvement(mdp, q, alpha=1.0, beta=beta, reference=reference, shift=shift)
        spi = _one_spi_step(mdp, q, alpha=1.0, beta=beta, reference=reference, shift=shift)
        np.testing.assert_allclose(closed, spi.pi, atol=1e-10)
        # the closed-form value of q is the one SPI evaluates (V^q)
        V = T.online_value(mdp, q, alpha=1.0, beta=beta, reference=reference, shift=shift)
        _, V_spi = T.policy_evaluation(mdp._replace(r=T.shifted_coherent_reward(
            q, None, 1.0, shift, T.absorbing_states(mdp))), q, beta, q if reference == "bc" else None)
        np.testing.assert_allclose(V, V_spi, atol=1e-9)


def test_closed_form_matches_spi_with_a_non_uniform_prior():
    mdp = random_mdp(13)
    prior, q = random_policy(14, 6, 3), random_policy(15, 6, 3)
    for reference, ref in (("bc", q), ("prior", prior)):
        closed = T.online_improvement(mdp, q, alpha=0.7, beta=0.2, reference=reference, prior=prior,
                                      shift=0.3)
        r = T.shifted_coherent_reward(q, prior, 0.7, 0.3)
        spi = T.soft_policy_iteration(mdp._replace(r=r), 0.2, ref, iters=1, pi_init=q)
        np.testing.assert_allclose(closed, spi.pi, atol=1e-10)
        # ... and it is not q (the test can fail in both directions)
        assert T.total_variation(closed, q).max() > 1e-2


def test_only_prior_reference_at_beta_equal_alpha_leaves_bc_in_place(few_demos):
    grid, _, q = few_demos
    for alpha in (1.0, 0.3):
        kept = T.online_improvement(grid, q, alpha=alpha, beta=alpha, reference="prior")
        assert T.total_variation(kept, q).max() < 1e-12
        # a constant shift is harmless without termination (V^q is constant: -shift / (1 - gamma))
        shifted = T.online_improvement(grid, q, alpha=alpha, beta=alpha, reference="prior", shift=1.3)
        assert T.total_variation(shifted, q).max() < 1e-12
        V = T.online_value(grid, q, alpha=alpha, beta=alpha, reference="prior", shift=1.3)
        np.testing.assert_allclose(V, -1.3 / (1 - grid.gamma), atol=1e-9)
    for beta in (0.3, 3.0):  # a colder or hotter temperature moves q
        moved = T.online_improvement(grid, q, alpha=1.0, beta=beta, reference="prior")
        assert T.total_variation(moved, q).max() > 0.1
    for beta in (0.1, 1.0, 3.0):  # the KL to q itself (CSIL online) moves q at every temperature
        moved = T.online_improvement(grid, q, alpha=1.0, beta=beta, reference="bc")
        assert T.total_variation(moved, q).max() > 0.1


def test_kl_to_bc_sharpens_q_on_demonstrated_states(few_demos):
    """On demonstrated states the KL to q raises the demonstrated action's probability (q^{1+alpha/beta})."""
    grid, counts, q = few_demos
    pi = T.online_improvement(grid, q, alpha=1.0, beta=1.0, reference="bc")
    seen = np.flatnonzero(counts.sum(1) > 0)
    a = np.argmax(q[seen], 1)
    assert np.all(pi[seen, a] >= q[seen, a] - 1e-12) and np.any(pi[seen, a] > q[seen, a] + 1e-3)


def test_kl_to_bc_equals_coherent_reward_of_scale_alpha_plus_beta_with_kl_to_prior(few_demos):
    """r - beta log(pi/q) = (alpha + beta) log(q/p) - beta log(pi/p): the same optimum, policy and value."""
    grid, _, q = few_demos
    for beta in (0.3, 1.0):
        to_bc = T.soft_value_iteration(grid._replace(r=T.coherent_reward(q, None, 1.0)), beta, q)
        to_prior = T.soft_value_iteration(grid._replace(r=T.coherent_reward(q, None, 1.0 + beta)), beta, None)
        np.testing.assert_allclose(to_bc.pi, to_prior.pi, atol=1e-10)
        np.testing.assert_allclose(to_bc.V, to_prior.V, atol=1e-8)
        assert T.total_variation(to_bc.pi, q).max() > 0.1


def test_success_gridworld_is_absorbing_at_the_goal(success_grid):
    grid, counts, q = success_grid
    np.testing.assert_array_equal(np.flatnonzero(T.absorbing_states(grid)), [T.GOAL])
    assert not T.absorbing_states(T.gridworld()).any()
    np.testing.assert_allclose(grid.r[T.GOAL], 0.0)
    np.testing.assert_allclose(grid.r[T.GOAL - 10, 2], 1 / (1 - grid.gamma))  # the step that enters the goal
    assert counts[T.GOAL].sum() == 0 and np.allclose(q[T.GOAL], 0.25)
    # the greedy expert's 11 moves, recovered from the absorbing-chain visits
    expert = T.soft_value_iteration(grid, 0.1)
    assert T.expected_visits(grid, T.greedy_policy(expert.pi)).sum() == pytest.approx(11.0, abs=1e-9)
    with pytest.raises(ValueError, match="no absorbing state"):
        T.expected_visits(T.gridworld(), q)


def test_shift_moves_the_optimum_only_with_absorbing_success(few_demos, success_grid):
    grid, counts, q = few_demos
    for shift in (0.7, 1.4):  # no termination: the optimum stays q (exactly, for any shift)
        sol = T.soft_value_iteration(grid._replace(r=T.shifted_coherent_reward(q, None, 1.0, shift)), 1.0)
        assert T.total_variation(sol.pi, q).max() < 1e-9
    grid, counts, q = success_grid
    bias0 = T.minimum_time_bias(grid, q, counts, shift=0.0)
    assert bias0.max_tv < 1e-9  # unshifted: q stays the optimum even though episodes end
    demo, bound = T.demo_reward_max(q, counts), T.coherent_reward_bound(T.uniform_prior(100, 4))
    assert bound == pytest.approx(np.log(4)) and 0 < demo < bound
    b_demo = T.minimum_time_bias(grid, q, counts, shift=demo)
    b_bound = T.minimum_time_bias(grid, q, counts, shift=bound)
    # the shift turns imitation into a race to the goal; the larger the shift, the larger the move
    assert 0.1 < b_demo.max_tv < b_bound.max_tv
    assert b_bound.visits.sum() < b_demo.visits.sum() < 0.5 * b_bound.visits_bc.sum()
    # a negative shift (a positive reward per step) does the opposite: it postpones success
    b_neg = T.minimum_time_bias(grid, q, counts, shift=-0.2)
    assert b_neg.visits.sum() > 10 * bias0.visits.sum()


def test_shifted_reward_is_zero_after_success(success_grid):
    grid, _, q = success_grid
    r = T.shifted_coherent_reward(q, None, 1.0, 2.0, T.absorbing_states(grid))
    np.testing.assert_allclose(r[T.GOAL], 0.0)
    np.testing.assert_allclose(r[:T.GOAL], T.coherent_reward(q)[:T.GOAL] - 2.0)
    with pytest.raises(ValueError, match=r"absorbing: expected shape \(100,\)"):
        T.shifted_coherent_reward(q, None, 1.0, 2.0, np.zeros(5, bool))
    with pytest.raises(ValueError, match="reference: expected 'bc', 'prior'"):
        T.online_improvement(grid, q, alpha=1.0, beta=1.0, reference="uniform")


def test_online_optimum_reaches_bc_only_as_beta_grows():
    """The numbers quoted in chapter 2, exercise 4 (100 demonstrations, alpha = 1, KL to q)."""
    nominal, windy = T.gridworld(), T.gridworld(0.5)
    counts = T.collect_demos(nominal, T.soft_expert(nominal, beta=0.1).pi, n_episodes=100, seed=0)
    q = T.bc_policy(counts)
    shaped = nominal._replace(r=T.coherent_reward(q, None, 1.0))
    seen = counts.sum(1) > 0
    tv_off, windy_ret = [], []
    for beta in (0.1, 1.0, 10.0, 100.0):
        opt = T.soft_value_iteration(shaped, beta, q).pi
        tv = T.total_variation(opt, q)
        assert tv[seen].max() < 1e-5
        tv_off.append(tv[~seen].max())
        windy_ret.append(T.expected_return(windy, opt))
    np.testing.assert_allclose(tv_off, [0.75, 0.65, 0.20, 0.02], atol=0.01)
    np.testing.assert_allclose(windy_ret, [0.044, 0.028, 0.004, 0.002], atol=1e-3)

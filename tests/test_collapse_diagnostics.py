"""Chapter 10's diagnostics and remedies: the entropy gap, the nearest-neighbour ratio, the nuisance covariance,
whitening and projection, and the synthetic embeddings."""

import numpy as np
import pytest

from csil_lite import diagnostics as dg
from csil_lite.embeddings import synthetic_embedding, with_oracle


class KnownStdPolicy:
    """apply(params, obs) -> (0, std) with std = exp(obs[:, :2]): the stds are whatever the states say."""
    max_std = 1.0

    def apply(self, params, obs):
        obs = np.asarray(obs)
        return np.zeros((len(obs), 2)), np.exp(obs[:, :2])


def test_entropy_gap_of_known_stds():
    on = np.tile([np.log(0.1), np.log(0.2)], (5, 1))
    off = np.tile([np.log(0.4), np.log(0.2)], (7, 1))
    g = dg.entropy_gap(KnownStdPolicy(), None, on, off)
    assert g.gap == pytest.approx(np.log(4.0))  # only the first dimension's std changed, by 4x
    np.testing.assert_allclose(g.log_std_off - g.log_std_on, [np.log(4.0), 0.0], atol=1e-12)
    # the entropy of a diagonal Gaussian: sum log std + d/2 log(2 pi e)
    assert g.entropy_on == pytest.approx(np.log(0.1) + np.log(0.2) + np.log(2 * np.pi * np.e))
    assert dg.entropy_gap(KnownStdPolicy(), None, on, on).gap == pytest.approx(0.0)


def test_nearest_neighbour_ratio_is_one_for_like_points_and_grows_with_displacement():
    rng = np.random.default_rng(0)
    demo = rng.normal(size=(2000, 4))
    like = rng.normal(size=(500, 4))
    assert dg.nearest_neighbour_ratio(demo, like) == pytest.approx(1.0, abs=0.12)
    ratios = [dg.nearest_neighbour_ratio(demo, like + [shift, 0, 0, 0]) for shift in (2.0, 4.0)]
    assert 1.3 < ratios[0] < ratios[1]


def test_nearest_neighbour_ratio_refuses_bad_input():
    with pytest.raises(ValueError, match="dims"):
        dg.nearest_neighbour_ratio(np.zeros((10, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="held-out"):
        dg.nearest_neighbour_ratio(np.zeros((2, 3)), np.zeros((5, 3)), holdout=0.1)


def test_within_state_covariance_recovers_the_nuisance_covariance():
    rng = np.random.default_rng(1)
    a_ = rng.normal(size=(3, 3))
    sigma = a_ @ a_.T + 0.5 * np.eye(3)
    chol = np.linalg.cholesky(sigma)
    signal = rng.normal(size=(20000, 3)) * 5.0  # the state's part cancels, however large
    a = signal + rng.normal(size=signal.shape) @ chol.T
    b = signal + rng.normal(size=signal.shape) @ chol.T
    np.testing.assert_allclose(dg.within_state_covariance(a, b), sigma, atol=0.08 * np.abs(sigma).max())


def test_whitening_gives_identity_nuisance_covariance_and_is_a_noop_for_white_nuisance():
    rng = np.random.default_rng(2)
    a_ = rng.normal(size=(5, 5))
    sigma = a_ @ a_.T + 0.1 * np.eye(5)
    w = dg.whitening(sigma)
    np.testing.assert_allclose(w.matrix.T @ sigma @ w.matrix, np.eye(5), atol=1e-9)
    np.testing.assert_allclose(dg.whitening(np.eye(5)).matrix, np.eye(5), atol=1e-12)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    np.testing.assert_allclose(dg.whitening(np.eye(5))(x), x, atol=1e-6)
    # a direction the nuisance never moves is raised to the floor, not divided by zero
    singular = np.diag([1.0, 1.0, 0.0])
    assert np.all(np.isfinite(dg.whitening(singular).matrix))
    with pytest.raises(ValueError, match="symmetric"):
        dg.whitening(np.array([[1.0, 2.0], [0.0, 1.0]]))


def test_project_out_removes_the_top_directions():
    sigma = np.diag([9.0, 4.0, 1.0])
    p = dg.project_out(sigma, 1)
    np.testing.assert_allclose(p.matrix, np.diag([0.0, 1.0, 1.0]), atol=1e-12)
    np.testing.assert_allclose(dg.project_out(sigma, 0).matrix, np.eye(3), atol=1e-12)
    with pytest.raises(ValueError, match="k must"):
        dg.project_out(sigma, 3)


def test_variance_spectrum_and_participation_ratio():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50000, 4)) * [3.0, 1.0, 1.0, 0.0]
    lam = dg.variance_spectrum(x)
    np.testing.assert_allclose(lam, [9.0, 1.0, 1.0, 0.0], atol=0.15)
    assert dg.participation_ratio([1.0, 1.0, 1.0, 1.0]) == pytest.approx(4.0)
    assert dg.participation_ratio([1.0, 0.0, 0.0]) == pytest.approx(1.0)


def test_synthetic_embedding_shares_the_signal_and_redraws_the_nuisance():
    emb = synthetic_embedding(2, 40, signal_dims=8, nuisance_latent=4, seed=0)
    s = np.random.default_rng(0).uniform(-1, 1, (3000, 2))
    a, b = emb(s, seed=1), emb(s, seed=2)
    assert a.shape == (3000, 40) and emb.dim == 40
    np.testing.assert_array_equal(a[:, :8], b[:, :8])  # the state's features do not depend on the draw
    assert not np.allclose(a[:, 8:], b[:, 8:])
    assert np.mean(a ** 2) == pytest.approx(1.0, abs=0.1)  # unit mean square, on average over coordinates
    sigma = dg.within_state_covariance(a, b)
    assert np.abs(sigma[:8]).max() < 1e-9 and np.trace(sigma[8:, 8:]) > 20  # the nuisance lives in dims 8..39
    assert with_oracle(a, s, 4.0)[:, -2:] == pytest.approx(4.0 * s)
    with pytest.raises(ValueError, match="states"):
        emb(np.zeros((3, 5)), seed=0)


def test_stage_outputs_of_a_hetstat_policy():
    import jax
    from csil_lite.nets import HetStatPolicy
    policy = HetStatPolicy(2, hidden=(16,), bottleneck=4, features=8)
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    params = policy.init(jax.random.PRNGKey(0), obs)
    out = dg.stage_outputs(policy, params, obs)
    assert out["input"].shape == (5, 3) and out["bottleneck"].shape == (5, 4) and out["features"].shape == (5, 8)
    np.testing.assert_allclose(out["input"], obs)


def test_strip_task_geometry():
    from csil_lite.collapse import strip_task
    t = strip_task(256, 128, seed=0)
    assert np.abs(t.demo_states[:, 1]).max() < 0.3 and np.abs(t.online_states[:, 1]).min() >= 0.4
    assert np.abs(t.demo_actions).max() <= 0.9
    np.testing.assert_array_equal(strip_task(256, 128, seed=0).demo_actions, t.demo_actions)  # seeded


def test_high_dimensional_nuisance_collapses_the_geometry_and_whitening_restores_the_gap():
    """The chapter's central measurement in miniature (one seed, short BC): with 248 nuisance dimensions the
    off-demonstration points are no farther from the demonstrations than held-out demonstrations are (measured
    ratio 1.00-1.01 over seeds 0-2, 18-41 for the signal alone) and whitening by the nuisance covariance opens
    the entropy gap (measured +1.2 to +2.3 nats over the unremedied run, seeds 0-2, both float paths)."""
    from csil_lite.collapse import gap_run
    kw = dict(seed=0, steps=400, hidden=(64, 64), n_demo=512)
    signal = gap_run(8, **kw)
    nuisance = gap_run(256, **kw)
    whitened = gap_run(256, remedy="whiten", **kw)
    assert nuisance.nn_input < 1.1 and signal.nn_input > 10.0, (signal, nuisance)
    assert whitened.gap > nuisance.gap + 0.5, (whitened, nuisance)
    with pytest.raises(ValueError, match="embedding"):
        gap_run(None, remedy="whiten")


def test_gap_over_training_measures_the_run_it_reports():
    """Entropies every `every` BC steps, step 0 being train_bc's own initialisation; the last row is the trained
    policy's (the same train_bc call without the callback gives the same parameters)."""
    from csil_lite.collapse import gap_over_training, policy_inputs, strip_task
    from csil_lite.nets import HetStatPolicy
    from csil_lite.pretrain import train_bc
    kw = dict(seed=1, steps=60, every=20, hidden=(16,), n_demo=128)
    out = gap_over_training(16, **kw)
    np.testing.assert_array_equal(out["steps"], [0, 20, 40, 60])
    task = strip_task(128, seed=1)
    x_demo, x_online = policy_inputs(task, 16, seed=1)
    policy = HetStatPolicy(2, hidden=(16,), bottleneck=12, features=128)
    fit = train_bc(policy, x_demo, task.demo_actions, steps=60, seed=1, progress=False, chunk=20)
    g = dg.entropy_gap(policy, fit.params, x_demo, x_online)
    assert out["entropy_on"][-1] == pytest.approx(g.entropy_on, abs=1e-5)
    assert out["entropy_off"][-1] == pytest.approx(g.entropy_off, abs=1e-5)
    import jax
    init = policy.init(jax.random.split(jax.random.PRNGKey(1))[0], x_demo[:1])
    assert out["entropy_on"][0] == pytest.approx(dg.entropy_gap(policy, init, x_demo, x_online).entropy_on, abs=1e-5)


@pytest.mark.parametrize("steps", [60, 600])  # a head still less certain than the prior; one fitted below it
def test_exact_head_is_calibrated_to_the_learned_head_on_the_fit_states(steps):
    """exact_head_std matches the learned head's mean variance on the states it is fitted to (the bisection's
    target), and its std stays inside HetStat's bounds."""
    from csil_lite.collapse import policy_inputs, strip_task
    from csil_lite.nets import HetStatPolicy
    from csil_lite.pretrain import train_bc
    task = strip_task(128, seed=0)
    x_demo, x_online = policy_inputs(task, 16, seed=0)
    policy = HetStatPolicy(2, hidden=(16,), bottleneck=12, features=32)
    fit = train_bc(policy, x_demo, task.demo_actions, steps=steps, seed=0, progress=False)
    _, learned = policy.apply(fit.params, x_demo)
    var = lambda s: np.arctanh(np.asarray(s, np.float64) / np.sqrt(0.75)) ** 2 - policy.min_variance  # noqa: E731
    exact = dg.exact_head_std(policy, fit.params, x_demo, x_demo)
    assert exact.shape == (128, 2)
    assert var(exact).mean() == pytest.approx(var(learned).mean(), rel=1e-3)
    off = dg.exact_head_std(policy, fit.params, x_demo, x_online)
    assert np.all((off > policy.min_std - 1e-9) & (off < policy.max_std))

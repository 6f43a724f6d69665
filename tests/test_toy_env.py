"""Point-mass toy tasks, their scripted experts, demo collection and the environment registry."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from csil_lite.data.transitions import episodes_to_transitions
from csil_lite.envs import registry
from csil_lite.envs.toy import PointMassEnv, _segment_hits_box, collect_demos, make_expert, rollout

TOY = ["pointmass-reach", "pointmass-obstacles"]


@pytest.mark.parametrize("task", TOY)
def test_gymnasium_env_checker(task):
    check_env(PointMassEnv(task), skip_render_check=True)


@pytest.mark.parametrize("task", TOY)
def test_same_seed_same_episode_different_seed_different(task):
    acts = np.random.default_rng(0).uniform(-1, 1, (30, 2)).astype(np.float32)

    def run(seed):
        env = PointMassEnv(task)
        obs = [env.reset(seed=seed)[0]]
        for a in acts:
            obs.append(env.step(a)[0])
        return np.stack(obs)

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.allclose(run(3), run(4))
    # A seed given at construction fixes the first reset, like reset(seed=...).
    np.testing.assert_array_equal(PointMassEnv(task, seed=7).reset()[0], PointMassEnv(task).reset(seed=7)[0])
    np.testing.assert_array_equal(
        registry.make_env(task, seed=7).reset()[0], PointMassEnv(task).reset(seed=7)[0]
    )


def test_noise_free_dynamics_match_closed_form():
    """From rest under a constant action: v_t = accel a (1 - d^t) / (1 - d), p_t = p_0 + sum of v."""
    env = PointMassEnv("pointmass-reach", noise_std=0.0)
    obs, _ = env.reset(seed=0)
    p0, a, d, k = obs[:2].astype(np.float64), np.array([0.3, -0.2]), 0.8, 0.01
    p = p0.copy()
    for t in range(1, 6):
        obs, *_ = env.step(a)
        v = k * a * (1 - d**t) / (1 - d)
        p = p + v
        np.testing.assert_allclose(obs[:2], p, atol=1e-6)
        np.testing.assert_allclose(obs[2:4], v / env.task.terminal_speed, atol=1e-5)


@pytest.mark.parametrize(
    "bad", [np.zeros(3), np.array([1.5, 0.0]), np.array([np.nan, 0.0]), np.zeros((1, 2))]
)
def test_bad_actions_raise(bad):
    env = PointMassEnv("pointmass-reach")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(bad)


def test_step_before_reset_and_after_end_raise():
    env = PointMassEnv("pointmass-reach", horizon=3)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2))
    env.reset(seed=0)
    for _ in range(3):
        *_, truncated, _ = env.step(np.zeros(2))
    assert truncated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2))


def test_timeout_truncates_without_terminating():
    env = PointMassEnv("pointmass-reach")
    env.reset(seed=1)
    for t in range(env.task.horizon):
        _, rew, terminated, truncated, info = env.step(np.zeros(2))
        assert not terminated and rew == 0.0 and not info["success"]
        assert truncated == (t == env.task.horizon - 1)


@pytest.mark.parametrize("task", TOY)
def test_success_is_absorbing_with_sparse_reward(task):
    env = PointMassEnv(task)
    ep = rollout(env, make_expert(task, np.random.default_rng(0)), seed=11)
    assert ep["success"] and ep["terminal"]
    np.testing.assert_array_equal(ep["rewards"][:-1], 0.0)
    assert ep["rewards"][-1] == 1.0
    last = ep["next_obs"][-1]
    assert np.linalg.norm(last[:2] - last[4:6]) < env.task.goal_radius
    assert np.linalg.norm(last[2:4]) < env.task.stop_speed
    # The shaped "true" reward rises (distance shrinks) over an expert episode.
    assert ep["shaped_rewards"][-1] > ep["shaped_rewards"][0]


def test_segment_box_intersection():
    box = (-0.05, -1.0, 0.05, 0.2)
    assert _segment_hits_box(np.array([-0.2, 0.0]), np.array([0.2, 0.0]), box)  # passes straight through
    assert not _segment_hits_box(np.array([-0.2, 0.5]), np.array([0.2, 0.5]), box)  # above it
    assert not _segment_hits_box(np.array([-0.2, 0.0]), np.array([-0.1, 0.0]), box)  # stops short
    assert _segment_hits_box(np.array([0.0, 0.0]), np.array([0.0, 0.1]), box)  # vertical, inside the slab


def test_wall_stops_the_mass_outside_the_gap():
    env = PointMassEnv("pointmass-obstacles", noise_std=0.0)
    for seed in range(100):  # a start clearly outside the gap's rows
        obs, _ = env.reset(seed=seed)
        if abs(obs[1] - obs[6]) > env.task.gap_half_width + 0.1:
            break
    crashed = False
    for _ in range(60):
        obs, *_ = env.step(np.array([1.0, 0.0]))
        assert obs[0] <= -env.task.wall_half_thickness
        crashed |= bool(np.all(obs[2:4] == 0.0) and obs[0] > -0.2)
    assert crashed


@pytest.mark.parametrize("task", TOY)
def test_expert_success_rate(task):
    env = PointMassEnv(task)
    expert = make_expert(task, np.random.default_rng(1))
    success = np.mean([rollout(env, expert, seed=100 + i)["success"] for i in range(50)])
    assert success >= 0.95, f"{task}: scripted expert success {success:.2f} < 0.95"


def test_collect_demos_format_and_determinism():
    demos = collect_demos("pointmass-obstacles", 3, seed=5)
    again = collect_demos("pointmass-obstacles", 3, seed=5)
    other = collect_demos("pointmass-obstacles", 3, seed=6)
    assert len(demos) == 3 and all(d["success"] and d["terminal"] for d in demos)
    for a, b in zip(demos, again):
        np.testing.assert_array_equal(a["obs"], b["obs"])
        np.testing.assert_array_equal(a["actions"], b["actions"])
    assert not np.array_equal(demos[0]["obs"][0], other[0]["obs"][0])
    tr = episodes_to_transitions(demos)
    assert tr.obs.shape == (sum(len(d["actions"]) for d in demos), 7) and tr.act_dim == 2
    assert tr.terminal.sum() == 3 and np.array_equal(tr.terminal, tr.last)
    assert np.all(np.abs(tr.action) <= 1.0)
    np.testing.assert_array_equal(tr.obs[1:][tr.last[:-1] == 0], tr.next_obs[:-1][tr.last[:-1] == 0])
    with pytest.raises(RuntimeError, match="successes"):
        collect_demos("pointmass-reach", 3, seed=0, horizon=2)


def _fit_tiny_mlp(x: np.ndarray, y: np.ndarray, seed: int = 0, hidden: int = 64, steps: int = 3000):
    """Numpy MLP regression of actions (Adam, MSE on atanh targets): a stand-in for BC, for this test only."""
    rng = np.random.default_rng(seed)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xn, yt = (x - mu) / sd, np.arctanh(np.clip(y, -0.97, 0.97))
    dims = [x.shape[1], hidden, hidden, y.shape[1]]
    params = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        params += [rng.normal(0, 1 / np.sqrt(a), (a, b)) * (0.1 if i == 2 else 1.0), np.zeros(b)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        i = rng.integers(0, len(xn), 128)
        h0 = xn[i]
        h1 = np.tanh(h0 @ params[0] + params[1])
        h2 = np.tanh(h1 @ params[2] + params[3])
        g = 2 * (h2 @ params[4] + params[5] - yt[i]) / len(i)
        g2 = g @ params[4].T * (1 - h2**2)
        g1 = g2 @ params[2].T * (1 - h1**2)
        grads = [h0.T @ g1, g1.sum(0), h1.T @ g2, g2.sum(0), h2.T @ g, g.sum(0)]
        for j, gr in enumerate(grads):
            m[j] = 0.9 * m[j] + 0.1 * gr
            v[j] = 0.999 * v[j] + 0.001 * gr**2
            params[j] -= 3e-3 * (m[j] / (1 - 0.9**t)) / (np.sqrt(v[j] / (1 - 0.999**t)) + 1e-8)

    def policy(obs: np.ndarray) -> np.ndarray:
        h = (np.asarray(obs, np.float64) - mu) / sd
        h = np.tanh(np.tanh(h @ params[0] + params[1]) @ params[2] + params[3])
        return np.tanh(h @ params[4] + params[5]).astype(np.float32)

    return policy


@pytest.mark.slow
def test_bc_from_few_demos_is_clearly_worse_than_the_expert():
    """The point of the obstacle task: cloning 10 demos leaves a large gap for RL to close."""
    task = "pointmass-obstacles"
    tr = episodes_to_transitions(collect_demos(task, 10, seed=0))
    policy = _fit_tiny_mlp(tr.obs.astype(np.float64), tr.action.astype(np.float64))
    env = PointMassEnv(task)
    bc = np.mean([rollout(env, policy, seed=5000 + i)["success"] for i in range(50)])
    assert bc <= 0.6, f"BC success {bc:.2f}: the task is too easy to show an imitation gap"


def test_registry_names_and_errors():
    assert set(TOY) <= set(registry.TASKS)
    assert {"lift", "can", "square", "square_d0"} <= set(registry.TASKS)
    assert isinstance(registry.make_env("pointmass-reach", horizon=7), PointMassEnv)
    assert registry.make_env("pointmass-reach", horizon=7).task.horizon == 7
    with pytest.raises(ValueError, match="pointmass-reach"):  # lists the known tasks
        registry.make_env("pointmass-rech")
    with pytest.raises(TypeError, match="horizn"):
        registry.make_env("pointmass-reach", horizn=7)
    with pytest.raises(ValueError, match="csil_lite.data.scripted"):
        registry.make_expert("square", seed=0)
    act = registry.make_expert("pointmass-reach", seed=0)(PointMassEnv("pointmass-reach").reset(seed=0)[0])
    assert act.shape == (2,) and np.all(np.abs(act) <= 1)


def test_registry_is_lazy_and_in_sync_with_robosuite_module():
    code = "import sys, csil_lite.envs.registry; print('csil_lite.envs.robosuite' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    rs = pytest.importorskip("csil_lite.envs.robosuite")
    assert set(registry.ROBOSUITE_TASKS) == set(rs.TASKS)

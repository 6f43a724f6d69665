"""Composition of a base policy with the small policy (issue 22, first slice): the executed action stays in the
box, the residual's density is the shifted latent's, what the learner sees is the small policy's own action, the
BC start executes the intended action on demonstrated states, the base is never trained, and the replay stores
the base action each executed action was composed with."""

import json

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from csil_lite import assembly
from csil_lite.base.compose import BaseEdge, Ensemble, Residual, for_learner, residual_start, with_base_actions
from csil_lite.base.policy import CallableBase
from csil_lite.config import BaseConfig, RunConfig, with_overrides
from csil_lite.data.transitions import Transitions, episodes_to_transitions
from csil_lite.distributions import THRESHOLD, latent_kl, tanh_normal
from csil_lite.errors import UserError
from csil_lite.replay import ReplayBuffer, mixed_batch

COMPOSITIONS = [Ensemble(), Residual(), Residual(scale=0.1), Residual(scale=2.0)]
IDS = ["ensemble", "residual", "residual-s0.1", "residual-s2"]


# -- the executed action -------------------------------------------------------------------------------------

@pytest.mark.parametrize("comp", COMPOSITIONS, ids=IDS)
@pytest.mark.parametrize("xp", [np, jnp], ids=["numpy", "jax"])
def test_executed_actions_stay_in_the_box(comp, xp):
    """Every pair of special values (saturated and beyond-the-box base actions, saturated small actions) and
    random ones: finite, inside [-1, 1]."""
    special = np.array([-1.5, -1.0, -THRESHOLD, -0.5, 0.0, 0.5, THRESHOLD, 1.0, 1.5], np.float32)
    b, a = np.meshgrid(special, np.clip(special, -1, 1), indexing="ij")
    rng = np.random.default_rng(0)
    b = np.concatenate([b.ravel(), rng.uniform(-1.2, 1.2, 2000)]).astype(np.float32)[:, None]
    a = np.concatenate([a.ravel(), rng.uniform(-1, 1, 2000)]).astype(np.float32)[:, None]
    out = np.asarray(comp.execute(xp.asarray(b), xp.asarray(a)))
    assert out.shape == b.shape and np.all(np.isfinite(out))
    assert np.all(np.abs(out) <= 1.0), float(np.abs(out).max())
    # and no saturated base is absorbing: the small policy can still move the executed action both ways
    lo, hi = (np.asarray(comp.execute(xp.asarray([[1.0]]), xp.asarray([[s]])))[0, 0] for s in (-1.0, 1.0))
    assert lo < hi


def test_the_formulas():
    """The paper's equations on hand-computed values."""
    b, a = np.array([0.6, -1.0, 1.0], np.float32), np.array([0.2, 0.4, -0.4], np.float32)
    np.testing.assert_allclose(Ensemble().execute(b, a), [0.4, -0.3, 0.3], atol=1e-7)
    bc = np.clip(b, -THRESHOLD, THRESHOLD)
    np.testing.assert_allclose(Residual().execute(b, a), np.tanh(np.arctanh(a) + np.arctanh(bc)), atol=1e-6)
    np.testing.assert_allclose(Residual(scale=0.1).execute(b, a), [0.62, -0.96, 0.96], atol=1e-6)
    # the inverse: the BC target executes the demonstrated action (reachable ones for the bounded form)
    e = np.array([0.9, -1.0, 1.0, 0.0], np.float32)
    bb = np.array([-0.95, 1.0, -1.0, 0.3], np.float32)
    np.testing.assert_allclose(Residual().execute(bb, Residual().bc_target(bb, e)), e, atol=1e-5)
    np.testing.assert_array_equal(Ensemble().bc_target(bb, e), e)
    near = bb + np.float32(0.05) * np.sign(e - bb)
    np.testing.assert_allclose(Residual(scale=0.1).execute(bb, Residual(scale=0.1).bc_target(bb, near)), near,
                               atol=1e-6)


# -- the residual's density ----------------------------------------------------------------------------------

@pytest.mark.parametrize("base", [0.7, -0.3, 1.0])
def test_residual_log_prob_is_the_shifted_latents_density(base):
    """1-D: exp(log_prob) against (i) a central difference of the shifted latent's CDF and (ii) a histogram of
    actions executed through `Residual.execute` from the small policy's own samples tanh(u), u ~ N(mean, std)."""
    mean, std, comp = 0.3, 0.6, Residual()
    dist = comp.distribution(jnp.array([mean]), jnp.array([std]), jnp.array([base]))
    shift = np.arctanh(np.clip(base, -THRESHOLD, THRESHOLD))

    def cdf(x):
        return norm.cdf((np.arctanh(x) - mean - shift) / std)

    x = np.linspace(-0.99, 0.99, 199)
    h = 1e-5
    numeric = (cdf(x + h) - cdf(x - h)) / (2 * h)
    lp = np.asarray(dist.log_prob(jnp.asarray(x[:, None], jnp.float32)))
    np.testing.assert_allclose(np.exp(lp), numeric, rtol=2e-3, atol=1e-4)

    rng = np.random.default_rng(1)
    n = 400_000
    own = np.tanh(rng.normal(mean, std, (n, 1))).astype(np.float32)
    executed = comp.execute(np.full((n, 1), base, np.float32), own)[:, 0]
    edges = np.linspace(-0.998, 0.998, 41)  # inside the clipping threshold (where the density is the tail mass)
    counts, _ = np.histogram(executed, edges)
    hist = counts / n / np.diff(edges)
    # bin-averaged predicted density: exp(log_prob) integrated over each bin on a grid uniform in atanh(a) (the
    # density rises steeply towards the threshold), 81 points per bin
    grid_u = np.linspace(np.arctanh(edges[:-1]), np.arctanh(edges[1:]), 81).T
    fine = np.tanh(grid_u)
    pred_fine = np.exp(np.asarray(dist.log_prob(jnp.asarray(fine.reshape(-1, 1), jnp.float32)))).reshape(fine.shape)
    pred = np.trapezoid(pred_fine * (1 - fine**2), grid_u, axis=1) / np.diff(edges)
    tol = 5 * np.sqrt(pred * np.diff(edges) / n) / np.diff(edges) + 2e-3
    assert np.all(np.abs(hist - pred) <= tol), np.max(np.abs(hist - pred) - tol)
    # the control: the unshifted density does not describe what was executed
    unshifted = np.exp(np.asarray(tanh_normal(jnp.array([mean]), jnp.array([std])).log_prob(
        jnp.asarray(((edges[:-1] + edges[1:]) / 2)[:, None], jnp.float32))))
    assert np.sum(np.abs(hist - unshifted) > 3 * tol) >= 10


def test_residual_density_is_only_for_the_unbounded_form():
    with pytest.raises(ValueError, match="no tanh-Gaussian density"):
        Residual(scale=0.1).distribution(jnp.zeros(1), jnp.ones(1), jnp.zeros(1))


# -- what the learner sees (the decision, pinned) ------------------------------------------------------------

def test_reward_and_kl_in_the_own_coordinates_are_the_theses_shifted_ones():
    """The coherent reward log q - log p and the exact KL, computed on the small policy's own action a_pi with its
    own latents, equal the thesis's on the executed action with both latents shifted by atanh(a_b): the decision
    'the learner sees a_pi' changes nothing for CSIL. With a base-independent (uniform) prior they differ by the
    Jacobian of a_pi -> a, which is why the docstring names it."""
    rng = np.random.default_rng(2)
    n, d = 256, 3
    mq, mp = rng.normal(0, 0.8, (n, d)), rng.normal(0, 0.8, (n, d))
    sq, sp = rng.uniform(0.2, 0.8, (n, d)), rng.uniform(0.2, 0.8, (n, d))
    base = rng.uniform(-1, 1, (n, d))
    base[:8] = 1.0  # saturated base actions too
    own = np.tanh(rng.normal(0, 0.7, (n, d)))
    comp = Residual()
    executed = comp.execute(base, own)
    keep = np.all(np.abs(executed) < 0.99, axis=1) & np.all(np.abs(own) < 0.99, axis=1)  # inside the clipping
    assert keep.sum() > 100
    f32 = lambda x: jnp.asarray(x[keep], jnp.float32)  # noqa: E731
    shifted = (comp.distribution(f32(mq), f32(sq), f32(base)).log_prob(f32(executed))
               - comp.distribution(f32(mp), f32(sp), f32(base)).log_prob(f32(executed)))
    own_coords = tanh_normal(f32(mq), f32(sq)).log_prob(f32(own)) - tanh_normal(f32(mp), f32(sp)).log_prob(f32(own))
    np.testing.assert_allclose(np.asarray(shifted), np.asarray(own_coords), atol=2e-3, rtol=1e-4)
    shift = comp.base_latent(f32(base))
    np.testing.assert_allclose(latent_kl(f32(mq) + shift, f32(sq), f32(mp) + shift, f32(sp)),
                               latent_kl(f32(mq), f32(sq), f32(mp), f32(sp)), rtol=1e-4, atol=1e-5)
    jac = np.sum(np.log1p(-own[keep] ** 2) - np.log1p(-executed[keep] ** 2), axis=1)  # uniform prior: differs
    exec_lp = np.asarray(comp.distribution(f32(mq), f32(sq), f32(base)).log_prob(f32(executed)))
    own_lp = np.asarray(tanh_normal(f32(mq), f32(sq)).log_prob(f32(own)))
    np.testing.assert_allclose(exec_lp - own_lp, jac, atol=2e-3)
    assert np.abs(jac).max() > 0.5


class _RecordingEnv(gym.Env):
    """A 2-D point that records every action it receives; episodes of `horizon` steps (truncated)."""

    def __init__(self, horizon=7):
        self.observation_space = gym.spaces.Box(-10, 10, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.horizon, self.received = horizon, []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.x = 0, self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.x.copy(), {}

    def step(self, action):
        self.received.append(np.array(action, np.float32))
        self.t += 1
        self.x = (self.x + 0.3 * np.asarray(action, np.float32)).astype(np.float32)
        return self.x.copy(), float(-np.abs(self.x).sum()), False, self.t >= self.horizon, {}


def _chunk_of(obs, horizon=4):
    """A deterministic base: rows drift with the index, the first dimension saturates beyond the box."""
    rows = np.arange(horizon)[:, None] * np.float32(0.1)
    return np.stack([np.full(horizon, 1.3 * np.sign(obs[0])), np.tanh(obs[1]) + rows[:, 0]], axis=1)


@pytest.mark.parametrize("mode", ["ensemble", "residual"])
def test_replay_stores_the_own_action_and_the_base_action_it_was_executed_with(mode):
    """The online collection the loop does: the replay's `action` is the small policy's own action, its
    `base_action` the base's row the environment composed it with: execute(base_action, action) is exactly what
    the environment received, and base_action is the chunk row the base proposed at that step."""
    cfg = BaseConfig(chunk=3, compose=mode)
    comp = assembly.make_composition(cfg)
    base = CallableBase(_chunk_of, obs_dim=2, action_dim=2, horizon=4)
    inner = _RecordingEnv()
    env = BaseEdge(lambda: base, comp, cfg.chunk).wrap(inner)  # what the loop's edge does
    replay = ReplayBuffer(50, 2, 2, base_actions=True)
    rng = np.random.default_rng(3)
    expected_base, own = [], []
    for ep in range(2):
        obs, info = env.reset(seed=ep)
        done, t = False, 0
        while not done:
            if t % cfg.chunk == 0:
                chunk = _chunk_of(obs).astype(np.float32)
            expected_base.append(chunk[t % cfg.chunk])
            a = rng.uniform(-1, 1, 2).astype(np.float32)
            a[0] = 1.0 if t == 0 else a[0]  # a saturated small action too
            base_now = info["base_action"]
            nxt, r, term, trunc, info = env.step(a)
            replay.add(obs, comp.learner_action(a, info["executed_action"]), np.float32(r), nxt, term,
                       last=term or trunc, base_action=base_now)
            own.append(a)
            obs, done, t = nxt, term or trunc, t + 1
    stored = replay.gather(np.arange(replay.size))
    np.testing.assert_array_equal(stored.action, np.stack(own))  # the learner's action: its own
    np.testing.assert_array_equal(stored.base_action, np.stack(expected_base))
    np.testing.assert_array_equal(np.asarray(comp.execute(stored.base_action, stored.action), np.float32),
                                  np.stack(inner.received))
    assert not np.allclose(stored.action, np.stack(inner.received))  # the executed one differs: the test can tell
    assert np.abs(np.stack(inner.received)).max() <= 1.0 and np.abs(stored.base_action).max() > 1.0
    assert base.calls == 2 * 3  # ceil(7 / 3) queries per episode


# -- the BC start --------------------------------------------------------------------------------------------

def _bc_demos(n_episodes=6, t=25, seed=0):
    """Episodes of a 2-D state; the demonstrated action is a smooth function of it, its second dimension
    saturated at +-1 on part of the states."""
    rng = np.random.default_rng(seed)
    eps = []
    for _ in range(n_episodes):
        x = np.cumsum(rng.normal(0, 0.15, (t + 1, 2)), axis=0).clip(-1, 1).astype(np.float32)
        act = np.stack([0.8 * np.sin(2 * x[:-1, 0]), np.clip(2 * x[:-1, 1], -1, 1)], axis=1).astype(np.float32)
        eps.append({"obs": x[:-1], "next_obs": x[1:], "actions": act})
    return episodes_to_transitions(eps)


def _base_of_state(obs):
    """An imperfect base, a function of the state (queried every step, so the state determines its action)."""
    a = np.stack([0.8 * np.sin(2 * obs[0]), np.clip(2 * obs[1], -1, 1)])
    return (0.5 * a + np.array([0.3, -0.2]))[None].astype(np.float32)


def test_bc_start_executes_the_intended_action_on_demonstrated_states():
    """BC of the small policy on `for_learner`'s targets; its mode executed through the composition gives the
    intended action on the demonstrated states: the demonstrated one (residual), the midpoint (ensemble, the
    paper's rule). The control: BC on the raw demonstrated actions does not make the residual execute them."""
    from csil_lite.nets.policy import MLPPolicy
    from csil_lite.pretrain.bc import train_bc

    demos = with_base_actions(_bc_demos(), CallableBase(_base_of_state, 2, 2, horizon=1), chunk=1)
    np.testing.assert_allclose(demos.base_action, np.concatenate([_base_of_state(o) for o in demos.obs]))
    policy = MLPPolicy(action_dim=2, hidden=(64, 64))
    mode = {}
    for name, comp in (("ensemble", Ensemble()), ("residual", Residual())):
        learner = for_learner(comp, demos)
        params = train_bc(policy, learner.obs, learner.action, steps=1500, batch_size=64, learning_rate=3e-3,
                          progress=False).params
        mode[name] = np.tanh(np.asarray(policy.apply(params, jnp.asarray(demos.obs))[0]))
    b, e = demos.base_action, demos.action
    err_res = np.abs(Residual().execute(b, mode["residual"]) - e)
    err_ens = np.abs(Ensemble().execute(b, mode["ensemble"]) - (b + e) / 2)
    assert err_res.mean() < 0.05 and err_ens.mean() < 0.05, (err_res.mean(), err_ens.mean())
    control = np.abs(Residual().execute(b, mode["ensemble"]) - e)  # raw targets under the residual: wrong
    assert control.mean() > 4 * err_res.mean(), (control.mean(), err_res.mean())


def test_for_learner_maps_actions_and_next_actions_within_episodes():
    demos = with_base_actions(_bc_demos(n_episodes=2, t=5), CallableBase(_base_of_state, 2, 2, horizon=1), 1)
    comp = Residual()
    learner = for_learner(comp, demos)
    np.testing.assert_allclose(learner.action, comp.bc_target(demos.base_action, demos.action), atol=1e-7)
    inner = demos.last == 0
    np.testing.assert_array_equal(learner.next_action[:-1][inner[:-1]], learner.action[1:][inner[:-1]])
    assert np.all(learner.next_action[demos.last == 1] == 0)
    np.testing.assert_array_equal(for_learner(Ensemble(), demos).action, demos.action)
    with pytest.raises(ValueError, match="no base actions"):
        for_learner(comp, _bc_demos(n_episodes=1, t=3))
    shuffled = demos.take(np.random.default_rng(0).permutation(demos.size))
    with pytest.raises(ValueError, match="episode"):
        with_base_actions(shuffled, CallableBase(_base_of_state, 2, 2, horizon=1), 1)


def test_demo_base_actions_are_the_chunk_rows_from_each_episodes_start():
    """The base labels demonstrations as the executor runs them: a fresh chunk at every episode's first step (no
    chunk leaks across episodes) and every N steps after."""
    eps = []
    for length, start in ((4, 0.5), (5, -0.5)):
        x = (start + 0.1 * np.arange(length + 1)[:, None] * np.ones((1, 2))).astype(np.float32)
        eps.append({"obs": x[:-1], "next_obs": x[1:], "actions": np.zeros((length, 2), np.float32)})
    demos = episodes_to_transitions(eps)
    base = CallableBase(_chunk_of, obs_dim=2, action_dim=2, horizon=4)
    labelled = with_base_actions(demos, base, chunk=3)
    expected = []
    for ep in eps:
        for t in range(len(ep["obs"])):
            if t % 3 == 0:
                chunk = _chunk_of(ep["obs"][t]).astype(np.float32)
            expected.append(chunk[t % 3])
    np.testing.assert_array_equal(labelled.base_action, np.stack(expected))
    assert base.calls == 2 + 2


@pytest.mark.parametrize("kind", ["hetstat", "mlp"])
def test_residual_start_at_zero_executes_the_base(kind):
    """`residual_init_scale=0` (ResFiT's zero last layer): the latent mean is 0 everywhere, the std unchanged, and
    the residual executes the base's action (clipped to the threshold)."""
    from csil_lite.nets.policy import HetStatPolicy, MLPPolicy

    policy = (HetStatPolicy(action_dim=2, hidden=(16,), features=16) if kind == "hetstat"
              else MLPPolicy(action_dim=2, hidden=(16,)))
    obs = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (32, 3)), jnp.float32)
    params = policy.init(jax.random.PRNGKey(0), obs[:1])
    params = jax.tree.map(lambda x: x + 0.3, params)  # as after BC: a non-zero mean
    mean, std = policy.apply(params, obs)
    assert float(jnp.abs(mean).max()) > 0.1
    z_mean, z_std = policy.apply(residual_start(params, 0.0), obs)
    assert float(jnp.abs(z_mean).max()) == 0.0
    np.testing.assert_array_equal(z_std, std)
    base = np.random.default_rng(1).uniform(-1, 1, (32, 2)).astype(np.float32)
    base[0] = 1.0
    np.testing.assert_allclose(Residual().execute(base, np.tanh(np.asarray(z_mean))),
                               np.clip(base, -THRESHOLD, THRESHOLD), atol=1e-7)
    half, _ = policy.apply(residual_start(params, 0.5), obs)
    np.testing.assert_allclose(half, 0.5 * mean, rtol=1e-5, atol=1e-6)
    assert residual_start(params, None) is params


# -- the base is never trained -------------------------------------------------------------------------------

def test_an_update_never_trains_the_base():
    """Demonstrations labelled by the stand-in (book/_artefacts/base), a replay with base actions, three agent
    updates on batches that carry `base_action`: the stand-in's parameters and its chunks for fixed noise are
    unchanged, and the update ran (the critic and the policy moved)."""
    from pathlib import Path

    from csil_lite.agents.core import init_state, make_update
    from csil_lite.configs import preset
    from csil_lite.loop import load_demos

    directory = Path(__file__).resolve().parents[1] / "book" / "_artefacts" / "base" / "pointmass-reach_1000"
    cfg = preset("preview", algo="csil", task="pointmass-reach", num_demos=2, agent=dict(n_demo=8, n_online=8),
                 nets=dict(policy_hidden=(16,), features=16, critic_hidden=(16,)),
                 base=dict(source=str(directory), chunk=5, compose="ensemble"))
    base = assembly.open_base(cfg.base)
    params_before = jax.tree.map(np.array, base.params)
    probe = load_demos(cfg).obs[:4]
    noise = np.random.default_rng(0).standard_normal((4, base.cfg.horizon, base.cfg.action_dim))
    chunks_before = base.sample(probe, noise)

    demos = for_learner(assembly.make_composition(cfg.base), with_base_actions(load_demos(cfg), base, cfg.base.chunk))
    assert demos.base_action is not None
    # the agent as `loop.prepare` builds it, with untrained BC and critic parameters (training them is not the point)
    agent = assembly.make_agent(cfg, demos.obs_spec, demos.act_dim)
    bc_params = agent.policy.init(jax.random.PRNGKey(0), demos.obs[:1])
    agent, _ = agent.resolve(bc_params, demos, jax.random.PRNGKey(1))
    state0 = init_state(agent, bc_params, agent.critic.init(jax.random.PRNGKey(2), demos.obs[:1], demos.action[:1]))
    replay = ReplayBuffer(64, demos.obs_spec, demos.act_dim, base_actions=True)
    rows = demos.take(np.arange(20))
    replay.add(rows.obs, rows.action, rows.reward, rows.next_obs, rows.terminal, rows.last,
               base_action=rows.base_action)
    batch = mixed_batch(demos, replay, 8, 8, np.random.default_rng(0), utd=cfg.agent.utd)
    assert batch.base_action is not None and batch.base_action.shape == batch.action.shape
    update, state = make_update(agent), state0
    for i in range(3):
        state, metrics = update(state, jax.tree.map(jnp.asarray, batch), jax.random.PRNGKey(i))
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    for new, old in ((state.critic.params, state0.critic.params), (state.actor.params, state0.actor.params)):
        assert max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(old))) > 0
    jax.tree.map(np.testing.assert_array_equal, params_before, jax.tree.map(np.array, base.params))
    np.testing.assert_array_equal(base.sample(probe, noise), chunks_before)


# -- Transitions and replay carry the base action ------------------------------------------------------------

def test_transitions_without_a_base_carry_none_through_tree_maps():
    demos = _bc_demos(n_episodes=2, t=4)
    assert demos.base_action is None
    assert demos.take(np.arange(3)).base_action is None
    assert jax.tree.map(jnp.asarray, demos).base_action is None
    assert len(jax.tree.leaves(demos)) == 7  # nothing stored for a base that is not there
    eps = [{"obs": np.zeros((3, 2)), "next_obs": np.zeros((3, 2)), "actions": np.zeros((3, 2)),
            "base_actions": np.ones((3, 2))}, {"obs": np.zeros((2, 2)), "next_obs": np.zeros((2, 2)),
                                               "actions": np.zeros((2, 2))}]
    with pytest.raises(ValueError, match="all or none"):
        episodes_to_transitions(eps)
    both = episodes_to_transitions([eps[0], {**eps[1], "base_actions": np.full((2, 2), 0.5)}])
    assert both.base_action.shape == (5, 2) and both.base_action.dtype == np.float32
    np.testing.assert_array_equal(both.base_action[3:], 0.5)


def test_replay_with_base_actions_stores_batches_and_resumes():
    demos = with_base_actions(_bc_demos(n_episodes=3, t=10), CallableBase(_base_of_state, 2, 2, horizon=1), 1)
    plain = ReplayBuffer(10, 2, 2)
    replay = ReplayBuffer(10, 2, 2, base_actions=True)
    assert replay.bytes_per_transition == plain.bytes_per_transition + 8
    with pytest.raises(ValueError, match="pass base_action"):
        replay.add(demos.obs[0], demos.action[0], 0.0, demos.next_obs[0], False)
    with pytest.raises(ValueError, match="without base_actions"):
        plain.add(demos.obs[0], demos.action[0], 0.0, demos.next_obs[0], False, base_action=demos.action[0])
    rows = demos.take(np.arange(8))
    replay.add(rows.obs, rows.action, rows.reward, rows.next_obs, rows.terminal, rows.last,
               base_action=rows.base_action)
    np.testing.assert_array_equal(replay.gather(np.arange(8)).base_action, rows.base_action)
    batch = mixed_batch(demos, replay, 5, 4, np.random.default_rng(0), utd=2)
    assert batch.base_action.shape == (2, 9, 2)
    # demo rows come from the demos' base actions, online rows from the buffer's: each row's pair is one of them
    pairs = {tuple(np.round(np.r_[o, b], 6)) for o, b in zip(demos.obs, demos.base_action)}
    assert all(tuple(np.round(np.r_[o, b], 6)) in pairs for o, b in zip(batch.obs.reshape(-1, 2),
                                                                         batch.base_action.reshape(-1, 2)))
    copy = ReplayBuffer(10, 2, 2, base_actions=True)
    copy.load_state_dict(replay.state_dict())
    np.testing.assert_array_equal(copy.gather(np.arange(8)).base_action, rows.base_action)
    with pytest.raises(ValueError, match="demos have none"):
        mixed_batch(_bc_demos(n_episodes=1, t=5), replay, 2, 2, np.random.default_rng(0))
    plain.add(rows.obs, rows.action, rows.reward, rows.next_obs, rows.terminal, rows.last)
    with pytest.raises(ValueError, match="replay stores none"):
        mixed_batch(demos, plain, 2, 2, np.random.default_rng(0))
    assert mixed_batch(demos._replace(base_action=None), plain, 2, 2, np.random.default_rng(0)).base_action is None


# -- configuration ---------------------------------------------------------------------------------------------

def test_base_config_validates_and_reads_back():
    cfg = RunConfig(base=BaseConfig(source="127.0.0.1:8000", chunk=10, compose="residual", residual_scale=0.1,
                                    residual_init_scale=0.0))
    assert cfg.base.kind == "openpi" and BaseConfig().kind == "none"
    assert BaseConfig(source="book/_artefacts/base/lift_2000").kind == "standin"
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    old = json.loads(json.dumps(RunConfig().to_dict()))
    del old["base"]  # a config.json written before the base section
    assert RunConfig.from_dict(old).base == BaseConfig()
    assert with_overrides(RunConfig(), base=dict(compose="residual")).base.compose == "residual"
    for kwargs, match in [(dict(chunk=0), "chunk"), (dict(compose="sum"), "compose"),
                          (dict(residual_scale=0.1), "compose='residual' only"),
                          (dict(compose="residual", residual_scale=0.0), "residual_scale"),
                          (dict(compose="residual", residual_init_scale=1.5), "residual_init_scale"),
                          (dict(source="host:70000"), "port"), (dict(source=" "), "source"),
                          (dict(chunk=2.5), "chunk")]:
        with pytest.raises(UserError, match=match):
            BaseConfig(**kwargs)


def test_assembly_maps_the_composition_strings(tmp_path):
    assert isinstance(assembly.make_composition(BaseConfig(compose="ensemble")), Ensemble)
    assert assembly.make_composition(BaseConfig(compose="residual", residual_scale=0.2)) == Residual(scale=0.2)
    assert set(assembly.COMPOSITIONS) == {"ensemble", "residual"}
    assert assembly.open_base(BaseConfig()) is None
    with pytest.raises(UserError, match="not a stand-in checkpoint"):
        assembly.open_base(BaseConfig(source=str(tmp_path / "missing")))

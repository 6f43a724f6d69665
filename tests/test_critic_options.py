"""The CSIL++ options of issue 23, each pinned by what it must do: the reward's refinement rate (once per critic
step or once per update), the critic's learning-rate schedule (XQC), LayerNorm in the HetStat trunk."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from csil_lite.agents.core import init_state, make_update
from csil_lite.assembly import agent_of, critic_learning_rate, make_agent, make_critic
from csil_lite.config import AgentConfig
from csil_lite.configs import preset
from csil_lite.data.transitions import Transitions
from csil_lite.nets import HetStatPolicy

OBS, ACT, UTD = 3, 2, 4


def _agent(**cfg):
    policy = HetStatPolicy(ACT, hidden=(16,), features=16)
    critic = make_critic((16, 16))
    agent = agent_of(AgentConfig(n_demo=4, n_online=4, utd=UTD, **cfg), policy, critic, ACT, critic_steps=100)
    key = jax.random.PRNGKey(0)
    return agent, init_state(agent, policy.init(key, jnp.zeros((1, OBS))),
                             critic.init(key, jnp.zeros((1, OBS)), jnp.zeros((1, ACT))))


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.uniform(-1, 1, s).astype(np.float32)  # noqa: E731
    zeros = np.zeros((UTD, 8), np.float32)
    return Transitions(obs=f(UTD, 8, OBS), action=f(UTD, 8, ACT) * 0.9, reward=f(UTD, 8), next_obs=f(UTD, 8, OBS),
                       next_action=f(UTD, 8, ACT), terminal=zeros, last=zeros)


def _close(a, b, **kw):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


@pytest.mark.parametrize("every", ["critic_step", "update"])
def test_refinement_rate_is_one_step_per_critic_step_or_per_update(every):
    """Per critic step: the reward params after one update are UTD refinement steps, one on each of the
    update's batches in turn; per update: exactly one step, on the last batch, from the update's start."""
    agent, state = _agent(refine_every=every)
    batch = _batch()
    after, metrics = make_update(agent)(state, batch, jax.random.PRNGKey(1))
    reward_state, steps = state.reward, range(UTD) if every == "critic_step" else [UTD - 1]
    for i in steps:
        _, reward_state, _ = agent.reward.reward_and_refine(reward_state, jax.tree.map(lambda x: x[i], batch))
    _close(after.reward.params, reward_state.params, rtol=2e-5, atol=1e-6)
    assert np.isfinite(float(metrics["reward_loss"]))
    if every == "update":  # every critic step saw the reward at the update's starting params
        start = [float(jnp.mean(agent.reward.of_batch(state.reward.variables, jax.tree.map(lambda x: x[i], batch))))
                 for i in range(UTD)]
        np.testing.assert_allclose(float(metrics["reward"]), np.mean(start), rtol=1e-5)


def test_refinement_rate_only_moves_the_reward_when_it_refines():
    agent, state = _agent(refine_every="update", refine_reward=False)
    after, _ = make_update(agent)(state, _batch(), jax.random.PRNGKey(1))
    _close(after.reward.params, state.reward.params, rtol=0, atol=0)


def test_critic_learning_rate_falls_linearly_over_the_runs_critic_steps():
    cfg = preset("preview", algo="csilpp", task="pointmass-reach", env_steps=1_500, learning_starts=500,
                 agent={"critic_lr": 3e-4, "critic_lr_final": 3e-5, "critic_weight_decay": 0.0})
    lr = critic_learning_rate(cfg.agent, (cfg.env_steps - cfg.learning_starts) * cfg.agent.utd)
    steps = 1_000 * cfg.agent.utd
    np.testing.assert_allclose([float(lr(0)), float(lr(steps // 2)), float(lr(steps)), float(lr(2 * steps))],
                               [3e-4, 1.65e-4, 3e-5, 3e-5], rtol=1e-5)
    assert critic_learning_rate(AgentConfig(critic_lr=1e-3)) == 1e-3  # no schedule: the number itself
    with pytest.raises(ValueError, match="number of critic steps"):
        critic_learning_rate(AgentConfig(critic_lr_final=1e-5))
    with pytest.raises(ValueError, match="critic_lr_final"):
        AgentConfig(critic_lr_final=0.0)


def test_critic_learning_rate_schedule_is_what_the_optimiser_steps_with():
    """Plain Adam's first step moves each param by about the learning rate; with the schedule, the k-th step by
    about lr(k): the optimiser built by `make_agent` follows the schedule, counted in critic steps."""
    cfg = preset("preview", algo="csil", task="pointmass-reach", env_steps=600, learning_starts=500,
                 agent={"critic_lr": 1e-2, "critic_lr_final": 1e-4, "utd": 1, "critic_weight_decay": 0.0})
    agent = make_agent(cfg, jax.ShapeDtypeStruct((OBS,), jnp.float32), ACT)
    params = {"w": jnp.ones(5)}
    opt = agent.critic_optim.init(params)
    grads = {"w": jnp.full(5, 0.3)}
    moves = []
    for _ in range(100):
        updates, opt = agent.critic_optim.update(grads, opt, params)
        moves.append(float(jnp.abs(updates["w"]).mean()))
    # Adam on a constant gradient steps by lr(k) (bias-corrected moments: m/sqrt(v) = 1 up to eps)
    np.testing.assert_allclose(moves[0], 1e-2, rtol=1e-3)
    np.testing.assert_allclose(moves[50], 1e-2 + (1e-4 - 1e-2) * 50 / 100, rtol=1e-3)
    np.testing.assert_allclose(moves[99], 1e-2 + (1e-4 - 1e-2) * 99 / 100, rtol=1e-2)


def test_trunk_layer_norm_makes_the_policy_invariant_to_the_first_layers_scale():
    """With `policy_layer_norm` the first Dense layer is followed by LayerNorm: scaling its kernel and bias by
    c > 0 leaves the policy's output unchanged (up to LayerNorm's epsilon); without it the output moves."""
    obs = jax.random.normal(jax.random.PRNGKey(3), (16, OBS))
    for layer_norm in (True, False):
        policy = HetStatPolicy(ACT, hidden=(16, 16), features=16, layer_norm=layer_norm, init_log_input_scale=0.0)
        params = policy.init(jax.random.PRNGKey(0), obs)
        scaled = jax.tree_util.tree_map_with_path(
            lambda path, x: x * 7.0 if any(getattr(p, "key", None) == "Dense_0" for p in path) else x, params)
        out, out_scaled = policy.apply(params, obs), policy.apply(scaled, obs)
        # the mean head starts at zero; compare the features the head reads instead
        f = policy.apply(params, obs, method=HetStatPolicy.stationary_features)
        f_scaled = policy.apply(scaled, obs, method=HetStatPolicy.stationary_features)
        gap = float(jnp.max(jnp.abs(f - f_scaled)))
        if layer_norm:
            assert gap < 1e-4, gap
            _close(out, out_scaled, atol=1e-5)
        else:
            assert gap > 1e-2, gap
    cfg = preset("preview", algo="csilpp", nets={"policy_layer_norm": True})
    assert cfg.nets.policy_kwargs()["layer_norm"] is True
    assert preset("preview", algo="csilpp").nets.policy_kwargs()["layer_norm"] is False  # the default is unchanged


# -- return normalisation (XQC) ------------------------------------------------------------------------------------


def test_running_return_moments_and_unit_std_on_a_synthetic_stream():
    """The running moments equal numpy's over the stream's discounted returns (reset after each episode's last
    step), and the scaled rewards' returns have unit standard deviation; no mean is subtracted."""
    from csil_lite.agents.components import ReturnNormalisation, ReturnStats

    rng = np.random.default_rng(0)
    gamma, lengths = 0.9, [7, 30, 3, 50, 12]
    rewards = np.concatenate([rng.normal(-3.0, 2.0, n) for n in lengths])
    last = np.concatenate([np.eye(1, n, n - 1)[0] for n in lengths]).astype(bool)
    g, gs = 0.0, []
    for r, end in zip(rewards, last):
        g = r + gamma * g
        gs.append(g)
        g = 0.0 if end else g
    norm = ReturnNormalisation(gamma).resolve(rewards, last)
    stats = norm.start()
    assert stats.count == len(rewards) and stats.g == 0.0  # the stream ended on an episode's last step
    np.testing.assert_allclose([stats.mean, stats.m2 / stats.count], [np.mean(gs), np.var(gs)], rtol=1e-10)
    scale = norm.scale(stats)
    np.testing.assert_allclose(np.std(np.asarray(gs) * scale), 1.0, rtol=1e-6)  # G is linear in the rewards
    assert scale > 0 and norm.scale(ReturnStats()) == 1.0
    # continuing the stream online is the same as having seen it all at once
    half = len(rewards) // 2
    part = ReturnNormalisation(gamma).resolve(rewards[:half], last[:half])
    online = part.start()
    for r, end in zip(rewards[half:], last[half:]):
        online = part.observe(online, r, bool(end))
    np.testing.assert_allclose(online, stats, rtol=1e-10)


def test_the_critic_sees_the_scaled_reward():
    """An update with return scale s equals one with scale 1 on rewards multiplied by s (environment reward)."""
    agent, state = _agent(prior="uniform", reward="env", refine_reward=False, return_norm="running_std")
    batch = _batch()
    scaled, _ = make_update(agent)(state._replace(return_scale=jnp.float32(0.25)), batch, jax.random.PRNGKey(2))
    raw, _ = make_update(agent)(state._replace(return_scale=jnp.float32(1.0)),
                                batch._replace(reward=batch.reward * np.float32(0.25)), jax.random.PRNGKey(2))
    _close(scaled.critic.params, raw.critic.params, rtol=1e-5, atol=1e-7)
    _close(scaled.actor.params, raw.actor.params, rtol=1e-5, atol=1e-7)


def test_return_normalisation_needs_a_numeric_support():
    from csil_lite.errors import UserError

    with pytest.raises(UserError, match="normalised units"):
        preset("preview", algo="csilpp", agent={"return_norm": "running_std"})
    cfg = preset("preview", algo="csilpp", agent={"return_norm": "running_std"}, nets={"critic_v_min": -8.0})
    assert cfg.agent.return_norm == "running_std"


def test_a_normalised_run_logs_its_scale_and_resumes_exactly(tmp_path):
    """A short CSIL++ run with XQC's normalisation on [-8, 0]: the scale starts from the demonstrations, moves
    with the online stream, is logged, and a run stopped and resumed logs what an uninterrupted one does."""
    from csil_lite.loop import read_metrics, train

    cfg = preset("preview", algo="csilpp", task="pointmass-reach", num_demos=3, bc_steps=50, critic_pretrain_steps=20,
                 env_steps=400, learning_starts=64, eval_every=100, eval_episodes=2, replay_capacity=1000,
                 agent={"n_demo": 32, "n_online": 32, "return_norm": "running_std"},
                 nets={"policy_hidden": (16,), "features": 16, "critic_hidden": (16,), "critic_v_min": -8.0,
                       "critic_atoms": 21})
    train(cfg, tmp_path / "full", progress=False)
    train(cfg, tmp_path / "split", progress=False, stop_after=150)
    train(cfg, tmp_path / "split", progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]  # noqa: E731
    full = strip(read_metrics(tmp_path / "full"))
    assert strip(read_metrics(tmp_path / "split")) == full
    scales = [r["return_scale"] for r in full if "return_scale" in r]
    assert len(scales) >= 3 and all(np.isfinite(scales)) and all(s > 0 for s in scales)
    assert len(set(scales)) > 1  # the online stream moves it

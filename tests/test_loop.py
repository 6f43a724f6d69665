"""The training loop: resume equals an uninterrupted run, same seed gives the same numbers, clear config errors."""

import json
import subprocess
import sys

import jax
import pytest

from csil_lite.configs import preset
from csil_lite.loop import load_run, read_metrics, train

TINY = dict(task="pointmass-reach", num_demos=3, bc_steps=50, critic_pretrain_steps=20, env_steps=400,
            learning_starts=64, eval_every=100, eval_episodes=2, replay_capacity=1000,
            agent=dict(n_demo=32, n_online=32), nets=dict(policy_hidden=(16,), features=16, critic_hidden=(16,)))


def _cfg(**kw):
    over = {**TINY, **kw}
    over["agent"] = dict(TINY["agent"])
    over["nets"] = dict(TINY["nets"])
    return preset("preview", **over)


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]


@pytest.mark.slow
def test_resume_continues_as_if_never_stopped(tmp_path):
    cfg = _cfg()
    train(cfg, tmp_path / "full", progress=False)
    first = train(cfg, tmp_path / "split", progress=False, stop_after=150)
    assert not first["completed"] and (tmp_path / "split" / "checkpoints").exists()
    second = train(cfg, tmp_path / "split", progress=False)
    assert second["completed"]
    assert _strip(read_metrics(tmp_path / "split")) == _strip(read_metrics(tmp_path / "full"))
    assert second["updates"] == json.loads((tmp_path / "full" / "summary.json").read_text())["updates"]


@pytest.mark.slow
def test_same_seed_same_numbers_and_other_seed_differs(tmp_path):
    a = _strip(read_metrics(train(_cfg(env_steps=200), tmp_path / "a", progress=False) and tmp_path / "a"))
    b = _strip(read_metrics(train(_cfg(env_steps=200), tmp_path / "b", progress=False) and tmp_path / "b"))
    c = _strip(read_metrics(train(_cfg(env_steps=200, seed=1), tmp_path / "c", progress=False) and tmp_path / "c"))
    assert a == b
    assert a != c


def test_unknown_task_and_changed_config_are_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        train(_cfg(task="halfcheetah"), tmp_path / "x", progress=False)
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "config.json").write_text(json.dumps({"task": "other"}))
    with pytest.raises(ValueError, match="different config"):
        train(_cfg(), tmp_path / "y", progress=False)


def test_cli_rejects_bad_values():
    run = lambda *a: subprocess.run([sys.executable, "-m", "csil_lite.cli", "train", *a],  # noqa: E731
                                    capture_output=True, text=True)
    res = run("--out", "unused", "--set", "agent.actor_lr=-0.1")
    assert res.returncode != 0 and "actor_lr" in res.stderr
    res = run("--out", "unused", "--algo", "dagger")
    assert res.returncode != 0 and "invalid choice" in res.stderr
    res = run("--out", "unused", "--set", "replay_capacity=10")
    assert res.returncode != 0 and "replay capacity" in res.stderr


def test_demo_shift_puts_the_best_demo_reward_at_zero():
    """reward_shift='demos' is resolved in prepare to the largest BC reward on the demos: the max becomes 0."""
    import dataclasses

    import numpy as np

    from csil_lite.assembly import agent_of
    from csil_lite.loop import coherent_rewards_of, make_reward_fn, prepare

    cfg = preset("preview", **{**TINY, "critic_pretrain_steps": 0, "nets": dict(TINY["nets"]),
                               "agent": {**TINY["agent"], "reward_shift": "demos"}})
    setup = prepare(cfg, progress=False)
    shift = setup.agent.reward.shift
    assert isinstance(shift, float) and setup.agent.setup()["reward"] == {"shift": shift}
    rv = setup.state.reward.variables
    r = coherent_rewards_of(setup.agent, rv, setup.demos.obs, setup.demos.action)
    assert r.max() == 0.0 and r.min() < 0.0
    bound = dataclasses.replace(setup.agent.config, reward_shift="bound")
    agent_bound = agent_of(bound, setup.agent.policy, setup.agent.critic, setup.agent.action_dim)
    r_bound = coherent_rewards_of(agent_bound, rv, setup.demos.obs, setup.demos.action)
    assert np.all(r_bound < r)  # the strict bound shifts further
    jit_reward = make_reward_fn(setup.agent)
    for n in (1, 5, 17):  # padded to 1, 8, 32 rows inside
        np.testing.assert_allclose(jit_reward(rv, setup.demos.obs[:n], setup.demos.action[:n]),
                                   r[:n], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="reward_shift"):
        preset("preview", agent=dict(reward_shift="median"))


def test_prepare_can_reuse_another_setups_bc():
    """SAC-from-BC of a seed starts from the same BC policy whether it trains BC itself or reuses CSIL's."""
    import dataclasses

    import jax
    import numpy as np

    from csil_lite.loop import prepare

    csil = prepare(_cfg(), progress=False)
    sac_cfg = _cfg(algo="sac_bc")
    fresh, reused = prepare(sac_cfg, progress=False), prepare(sac_cfg, progress=False, bc_from=csil)
    for a, b, c in zip(*(jax.tree.leaves(s.state.actor.params) for s in (csil, fresh, reused))):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_allclose(b, c, rtol=1e-6, atol=1e-6)
    assert reused.demos is csil.demos
    with pytest.raises(ValueError, match="policy network differs"):
        narrow = dataclasses.replace(sac_cfg, nets=dataclasses.replace(sac_cfg.nets, features=8))
        prepare(narrow, progress=False, bc_from=csil)


@pytest.mark.slow
def test_csilpp_critic_runs_end_to_end_and_resumes(tmp_path):
    """A batch+weight-normalised, categorical, twin critic through the whole loop: finite metrics, a support built
    from the demonstrations' returns, and an exact resume (batch statistics are part of the checkpoint)."""
    import math

    nets = dict(TINY["nets"], critic_norm="batch_weight", critic_head="categorical", critic_atoms=21,
                critic_ensemble=2)
    cfg = preset("preview", **{**TINY, "critic_pretrain_steps": 0, "env_steps": 300, "nets": nets,
                               "agent": dict(TINY["agent"], kl="exact")})
    full = train(cfg, tmp_path / "full", progress=False)
    rows = read_metrics(tmp_path / "full")
    # (reward_corr is an evaluation statistic: NaN when every evaluation episode has the same return.)
    trained = [v for r in rows[1:] for k, v in r.items() if k in ("q", "target", "critic_loss", "actor_loss", "kl")]
    assert len(trained) == 5 * (len(rows) - 1) and all(math.isfinite(v) for v in trained)
    assert set(full) >= {"run_dir", "metrics", "checkpoints"}  # plain data: no device arrays in the summary
    assert all(isinstance(v, (int, float, str, bool)) for v in full.values())
    _, state = load_run(tmp_path / "full")
    assert all(x.shape[0] == 2 for x in jax.tree.leaves(state.critic.params))  # twin kernels stacked on axis 0
    train(cfg, tmp_path / "split", progress=False, stop_after=150)
    train(cfg, tmp_path / "split", progress=False)
    assert _strip(read_metrics(tmp_path / "split")) == _strip(rows)
    import numpy as np

    # SARSA pretraining of the same critic: the joint train-mode pass, batch statistics carried into the state.
    from csil_lite.loop import prepare

    setup = prepare(preset("preview", **{**TINY, "nets": nets, "agent": dict(TINY["agent"])}), progress=False)
    assert setup.critic_losses.shape == (TINY["critic_pretrain_steps"],)
    assert np.all(np.isfinite(setup.critic_losses))
    means = [m for path, m in jax.tree_util.tree_leaves_with_path(setup.state.critic.batch_stats)
             if getattr(path[-1], "key", None) == "mean"]  # initialised at zero; moved by the train-mode passes
    assert means and all(float(np.abs(np.asarray(m)).max()) > 0 for m in means)


def test_prepare_clips_the_demonstrations_once_for_every_stage():
    """demo_action_margin: BC, the reward shift, SARSA and the online batches all see the clipped actions."""
    import numpy as np

    from csil_lite.loop import load_demos, prepare

    cfg = _cfg(bc_steps=10, critic_pretrain_steps=5, demo_action_margin=0.1)
    raw = load_demos(cfg)
    assert np.abs(raw.action).max() == 1.0  # the scripted expert saturates
    setup = prepare(cfg, progress=False)
    assert np.abs(setup.demos.action).max() == pytest.approx(0.9)
    np.testing.assert_allclose(setup.demos.action, np.clip(raw.action, -0.9, 0.9))
    np.testing.assert_allclose(setup.demos.next_action, np.clip(raw.next_action, -0.9, 0.9))
    unclipped = prepare(_cfg(bc_steps=10, critic_pretrain_steps=5, demo_action_margin=0.0), progress=False)
    np.testing.assert_array_equal(unclipped.demos.action, raw.action)


@pytest.mark.slow
def test_train_closes_its_environments_also_when_it_fails(tmp_path, monkeypatch):
    """A robosuite env holds a simulator and a renderer: a run closes every env it made, finished or not (chapter 7
    ran two runs in one kernel and kept four envs alive)."""
    import csil_lite.loop as loop_mod

    made, real = [], loop_mod.make_env

    def counting(name, **kw):
        env = real(name, **kw)
        made.append(env)
        closed = env.close
        env.closed = False

        def close():
            env.closed = True
            closed()

        env.close = close
        return env

    monkeypatch.setattr(loop_mod, "make_env", counting)
    train(_cfg(env_steps=100), tmp_path / "ok", progress=False)
    assert len(made) == 1 + TINY["eval_episodes"] and all(e.closed for e in made)

    made.clear()

    def broken_update(agent):
        raise RuntimeError("update failed")

    monkeypatch.setattr(loop_mod, "make_update", broken_update)
    with pytest.raises(RuntimeError, match="update failed"):
        train(_cfg(env_steps=100), tmp_path / "fails", progress=False)
    assert made and all(e.closed for e in made)

"""A run on top of a base policy (issue 22): `loop.train` with `RunConfig.base` set. The stored stand-in of
pointmass-reach is the base; the runs are tiny (what is checked is the plumbing, not learning):

- every transition the replay stores carries the base action its executed action was composed with, and the
  small policy's own action (what the learner sees), for both compositions;
- a run with a base resumes exactly (the base's noise is a function of the episode seed);
- the residual with `residual_init_scale=0` starts by executing the base's action;
- the CLI's --base / --compose / --chunk reach the configuration, and a bad base leaves no run directory.
"""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from csil_lite import assembly
from csil_lite.agents.core import make_act
from csil_lite.base.env import ChunkedBaseEnv
from csil_lite.configs import preset
from csil_lite.errors import UserError
from csil_lite.loop import prepare, read_metrics, train
from csil_lite.replay import ReplayBuffer

STANDIN = str(Path(__file__).resolve().parents[1] / "book" / "_artefacts" / "base" / "pointmass-reach_1000")


def tiny(compose="ensemble", **base):
    return preset("preview", algo="csil", task="pointmass-reach", num_demos=2, bc_steps=100,
                  critic_pretrain_steps=50, env_steps=240, learning_starts=60, eval_every=120, eval_episodes=3,
                  checkpoint_every=60, replay_capacity=1000, agent=dict(n_demo=16, n_online=16),
                  nets=dict(policy_hidden=(16,), features=16, critic_hidden=(16,)),
                  base=dict(source=STANDIN, chunk=4, compose=compose, **base))


@pytest.mark.slow
@pytest.mark.parametrize("compose", ["ensemble", "residual"])
def test_replay_holds_the_own_action_and_the_base_action_it_was_executed_with(compose, tmp_path, monkeypatch):
    executed_steps, stored = [], []
    real_step, real_add = ChunkedBaseEnv.step, ReplayBuffer.add

    def spy_step(self, action):
        base = None if self.base_action is None else np.array(self.base_action)
        out = real_step(self, action)
        executed_steps.append((base, np.array(action), out[-1]["executed_action"]))
        return out

    def spy_add(self, obs, action, reward, next_obs, terminated, last=None, base_action=None, **kw):
        stored.append((np.array(action), None if base_action is None else np.array(base_action)))
        return real_add(self, obs, action, reward, next_obs, terminated, last=last, base_action=base_action, **kw)

    monkeypatch.setattr(ChunkedBaseEnv, "step", spy_step)
    monkeypatch.setattr(ReplayBuffer, "add", spy_add)
    cfg = tiny(compose)
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["completed"] and summary["env_steps"] == cfg.env_steps
    assert len(stored) == cfg.env_steps
    composition = assembly.make_composition(cfg.base)
    matched = 0
    for (action, base_action), (b, a, executed) in zip(stored, _training_steps(executed_steps, stored)):
        assert base_action is not None and np.array_equal(base_action, b)  # the base action it was executed with
        assert np.array_equal(action, a)  # the small policy's own action, not the executed one
        np.testing.assert_allclose(executed, composition.execute(b, a), atol=1e-6)
        assert np.all(np.abs(executed) <= 1.0)
        matched += 1
    assert matched == cfg.env_steps


def _training_steps(executed_steps, stored):
    """The env steps whose action the replay stored, in order (the evaluation envs' steps, which run the
    policy's mean and are not stored, interleave with them)."""
    out, i = [], 0
    for b, a, executed in executed_steps:
        if i < len(stored) and np.array_equal(a, stored[i][0]) and np.array_equal(b, stored[i][1]):
            out.append((b, a, executed))
            i += 1
    return out


@pytest.mark.slow
def test_a_run_with_a_base_resumes_exactly(tmp_path):
    cfg = tiny("ensemble")
    whole = train(cfg, tmp_path / "whole", progress=False)
    part = train(cfg, tmp_path / "part", progress=False, stop_after=130)
    assert not part["completed"] and part["env_steps"] < cfg.env_steps
    again = train(cfg, tmp_path / "part", progress=False)
    assert again["completed"] and whole["completed"]

    def rows(d):
        return [{k: v for k, v in r.items() if k != "wall_time"} for r in read_metrics(d)]

    assert rows(tmp_path / "part") == rows(tmp_path / "whole")
    assert len(rows(tmp_path / "whole")) == cfg.env_steps // cfg.eval_every + 1


@pytest.mark.slow
def test_a_residual_started_at_zero_executes_the_base():
    cfg = tiny("residual", residual_init_scale=0.0)
    setup = prepare(cfg, progress=False)
    assert setup.demos.base_action is not None  # the demonstrations were labelled by the base
    act = make_act(setup.agent)
    obs = setup.demos.obs[:20]
    own = np.asarray(act(setup.state.actor.variables, jax.tree.map(jnp.asarray, obs), jax.random.PRNGKey(0), True))
    np.testing.assert_allclose(own, 0.0, atol=1e-6)
    base = setup.demos.base_action[:20]
    executed = assembly.make_composition(cfg.base).execute(base, own)
    np.testing.assert_allclose(executed, np.clip(base, -0.999, 0.999), atol=1e-6)
    # the prior (reward, KL) keeps the BC fit: only the actor's start moved
    bc = np.asarray(act(setup.state.prior, jax.tree.map(jnp.asarray, obs), jax.random.PRNGKey(0), True))
    assert np.abs(bc).max() > 1e-3


def test_cli_flags_reach_the_config_and_a_bad_base_leaves_nothing(tmp_path):
    from csil_lite.train import build_parser, config_from_args, main

    args = build_parser().parse_args(["--out", str(tmp_path / "r"), "--base", "localhost:8000", "--compose",
                                      "residual", "--chunk", "5", "--set", "base.residual_scale=0.1"])
    base = config_from_args(args).base
    assert (base.source, base.compose, base.chunk, base.residual_scale) == ("localhost:8000", "residual", 5, 0.1)
    with pytest.raises(UserError, match="--base"):
        config_from_args(build_parser().parse_args(["--out", str(tmp_path / "r"), "--compose", "residual"]))
    with pytest.raises(UserError, match="stand-in"):
        main(["--task", "pointmass-reach", "--out", str(tmp_path / "bad"), "--base", str(tmp_path / "nothing")])
    assert not (tmp_path / "bad").exists()
    saved = json.loads(json.dumps(preset("preview", base=dict(source=STANDIN)).to_dict()))
    assert saved["base"]["source"] == STANDIN


@pytest.mark.slow
def test_a_run_on_a_served_base_closes_every_connection_it_opens(tmp_path, monkeypatch):
    from csil_lite.base.client import RemoteBasePolicy
    from csil_lite.base.server import ServerThread
    from csil_lite.base.standin import load_standin

    opened, closed = [], []
    real_init, real_close = RemoteBasePolicy.__init__, RemoteBasePolicy.close

    def counting_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        opened.append(id(self))

    def counting_close(self):
        closed.append(id(self))
        real_close(self)

    monkeypatch.setattr(RemoteBasePolicy, "__init__", counting_init)
    monkeypatch.setattr(RemoteBasePolicy, "close", counting_close)
    with ServerThread(load_standin(STANDIN, seed=0), port=0) as server:
        cfg = tiny("ensemble")
        cfg = cfg.__class__.from_dict({**cfg.to_dict(), "env_steps": 120, "eval_every": 120,
                                       "base": {**cfg.to_dict()["base"], "source": f"{server.host}:{server.port}"}})
        summary = train(cfg, tmp_path / "run", progress=False)
        served = server.server.served
    assert summary["completed"] and served > 0
    # one connection to label the demonstrations, one for the training env, one per evaluation env
    assert len(opened) == 1 + 1 + cfg.eval_episodes
    assert sorted(closed) == sorted(opened)

import numpy as np
import pytest

from csil_lite.envs.toy import PointMassEnv, make_expert
from csil_lite.evaluation import evaluate


def _batched(policy):
    return lambda obs: np.stack([policy(o) for o in obs])


def _expert(task):
    return make_expert(task, np.random.default_rng(0), action_noise=0.0)


@pytest.mark.parametrize("n_envs", [2, 3, 7])
def test_lockstep_equals_one_env(n_envs):
    """Episode i gets seed i's start on whichever env runs it: the result cannot depend on the number of envs."""
    task = "pointmass-obstacles"
    act = _batched(_expert(task))
    # straight at the goal, ignoring the wall: fails some episodes, so episode lengths differ
    weak = lambda obs: np.clip(10 * (obs[:, 4:6] - obs[:, 0:2]), -1, 1)  # noqa: E731
    reward_fn = lambda o, a: -np.abs(a).sum(-1) + o[:, 0]  # noqa: E731
    for policy in (act, weak):
        one = evaluate(PointMassEnv(task), policy, episodes=7, seed=3, reward_fn=reward_fn)
        many = evaluate([PointMassEnv(task) for _ in range(n_envs)], policy, episodes=7, seed=3, reward_fn=reward_fn)
        assert one == pytest.approx(many, nan_ok=True)
    assert 0.0 < evaluate(PointMassEnv(task), weak, episodes=7, seed=3)["success_rate"] < 1.0


def test_expert_succeeds_and_zero_policy_fails():
    task = "pointmass-reach"
    envs = [PointMassEnv(task) for _ in range(5)]
    good = evaluate(envs, _batched(_expert(task)), episodes=10, seed=0)
    idle = evaluate(envs, lambda obs: np.zeros((len(obs), 2), np.float32), episodes=10, seed=0)
    assert good["success_rate"] >= 0.9 and good["episode_length"] < 100
    assert idle == {"success_rate": 0.0, "return": 0.0, "episode_length": 100.0}


def test_needs_an_env():
    with pytest.raises(ValueError, match="at least one"):
        evaluate([], lambda o: o, episodes=1, seed=0)

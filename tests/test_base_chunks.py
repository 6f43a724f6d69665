"""The chunk executor: a query every N steps, ceil(T/N) per T-step episode, fresh chunks at every episode start
(also when labelling demonstrations), and the gym wrapper that runs it inside `evaluate()`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from csil_lite.base.env import ChunkedBaseEnv, evaluate_base
from csil_lite.base.policy import (
    LOWDIM_KEY,
    CallableBase,
    ChunkExecutor,
    ObservationError,
    check_observation,
    label_episodes,
    queries_per_episode,
)


def counting_base(obs_dim=2, action_dim=2, horizon=10, scale=1.0):
    """Row i of query k is scale * [k, i, ...]: each handed-out action says which query and row it came from."""
    state = {"k": 0}

    def chunk(lowdim):
        state["k"] += 1
        out = np.zeros((horizon, action_dim), np.float32)
        out[:, 0] = state["k"]
        out[:, 1] = np.arange(horizon)
        return scale * out

    return CallableBase(chunk, obs_dim, action_dim, horizon)


@pytest.mark.parametrize("T,N", [(1, 10), (10, 10), (11, 10), (25, 10), (25, 7), (30, 1), (9, 3)])
def test_queries_and_indices(T, N):
    base = counting_base()
    ex = ChunkExecutor(base, N)
    ex.reset()
    rows = [ex.step(np.zeros(2)).copy() for _ in range(T)]
    assert base.calls == ex.queries == math.ceil(T / N) == queries_per_episode(T, N)
    for t, row in enumerate(rows):
        assert row[0] == t // N + 1 and row[1] == t % N  # query number, index in the chunk
    assert ex.index == (T - 1) % N


def test_reset_starts_a_fresh_chunk_mid_chunk():
    base = counting_base()
    ex = ChunkExecutor(base, 10)
    ex.reset()
    for _ in range(4):
        ex.step(np.zeros(2))
    ex.reset()
    a = ex.step(np.zeros(2))
    assert base.calls == 2 and ex.index == 0 and a[0] == 2 and a[1] == 0


def test_execute_steps_bounds():
    with pytest.raises(ValueError, match="1 <= N <= the base's action_horizon 10"):
        ChunkExecutor(counting_base(), 11)
    with pytest.raises(ValueError, match="1 <= N"):
        ChunkExecutor(counting_base(), 0)
    assert ChunkExecutor(counting_base(horizon=4)).execute_steps == 4


def test_wrong_chunk_shape_is_named():
    bad = CallableBase(lambda o: np.zeros((3, 2)), 2, 2, horizon=10)
    ex = ChunkExecutor(bad)
    with pytest.raises(ValueError, match=r"shape \[3, 2\], expected \[10, 2\]"):
        ex.step(np.zeros(2))


def test_labelling_resets_per_episode():
    """Episodes of 13 and 4 steps: the second starts with a fresh query, not row 3 of the first's chunk."""
    base = counting_base()
    out = label_episodes(base, [np.zeros((13, 2)), np.zeros((4, 2))], execute_steps=10)
    (a1, i1), (a2, i2) = out
    np.testing.assert_array_equal(i1, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2])
    np.testing.assert_array_equal(i2, [0, 1, 2, 3])
    np.testing.assert_array_equal(a1[:, 0], [1] * 10 + [2] * 3)
    np.testing.assert_array_equal(a2[:, 0], [3] * 4)
    assert base.calls == 3


def test_observation_checks_name_the_problem():
    spec = counting_base().spec
    good = {LOWDIM_KEY: np.zeros(2, np.float32)}
    check_observation(good, spec)
    check_observation({**good, "prompt": "go"}, spec)
    check_observation({LOWDIM_KEY: np.zeros(2, np.float64)}, spec)  # any float width
    cases = [
        ([1, 2], "must be a map"),
        ({}, "misses required key"),
        ({**good, "extra": 1}, r"unknown key\(s\) \['extra'\]"),
        ({LOWDIM_KEY: np.zeros(3, np.float32)}, r"shape \[3\], expected \[2\]"),
        ({LOWDIM_KEY: np.zeros(2, np.int32)}, "dtype <i4, expected <f4"),
        ({LOWDIM_KEY: np.array([np.nan, 0], np.float32)}, "1 non-finite"),
        ({LOWDIM_KEY: [0.0, 0.0]}, "expected a numpy array"),
        ({**good, "prompt": 3}, "expected a str"),
    ]
    for obs, msg in cases:
        with pytest.raises(ObservationError, match=msg):
            check_observation(obs, spec)


def test_wrapper_runs_base_in_evaluate_with_resets():
    """Base-only evaluation on the toy task: every episode starts a fresh chunk; queries = sum ceil(T_i / N)."""
    from csil_lite.envs.registry import make_env

    queries_at_reset = []

    class Spy(ChunkedBaseEnv):
        def reset(self, **kw):
            out = super().reset(**kw)
            queries_at_reset.append((self.executor.queries, out[1]["chunk_index"]))
            return out

    lengths = []
    # a base that pushes towards +x: episodes mostly time out (horizon 23 -> 3 queries each with N = 10)
    env = Spy(make_env("pointmass-reach", horizon=23), counting_base(6, 2, scale=0.01), 10)
    for ep in range(3):
        obs, info = env.reset(seed=ep)
        assert info["chunk_index"] == 0 and info["base_action"][1] == 0
        done, t = False, 0
        while not done:
            obs, r, term, trunc, info = env.step(np.zeros(2, np.float32))
            t += 1
            done = term or trunc
            if not done:
                assert info["chunk_index"] == t % 10
        lengths.append(t)
    assert env.executor.queries == sum(math.ceil(t / 10) for t in lengths)
    assert [i for _, i in queries_at_reset] == [0, 0, 0]


def test_evaluate_base_counts_queries():
    def make():
        return CallableBase(lambda o: np.zeros((10, 2), np.float32), 6, 2)

    out = evaluate_base("pointmass-reach", make, episodes=4, seed=0, execute_steps=5, num_envs=2, horizon=12)
    assert out["success_rate"] == 0.0 and out["episode_length"] == 12
    assert out["base_queries"] == 4 * math.ceil(12 / 5)

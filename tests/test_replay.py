"""Replay ring buffer and fixed-ratio demo/online batches."""

from __future__ import annotations

import numpy as np
import pytest

from csil_lite.data.transitions import Transitions, episodes_to_transitions
from csil_lite.envs.toy import PointMassEnv, collect_demos, make_expert
from csil_lite.replay import ReplayBuffer, mixed_batch


def _fill(buf: ReplayBuffer, n: int, start: int = 0) -> None:
    """Transition i has obs == i in every coordinate and reward i, so rows are identifiable."""
    for i in range(start, start + n):
        buf.add(
            np.full(buf.obs_shape, i, np.float32),
            np.zeros(buf.act_dim),
            float(i),
            np.full(buf.obs_shape, i + 1, np.float32),
            False,
        )


def _demos(n: int = 20, obs_dim: int = 3, act_dim: int = 2) -> Transitions:
    """Demo rows marked by negative rewards, to tell them apart from online rows in a mixed batch."""
    ep = {
        "obs": np.arange(n * obs_dim, dtype=np.float32).reshape(n, obs_dim),
        "actions": np.linspace(-1, 1, n * act_dim, dtype=np.float32).reshape(n, act_dim),
        "next_obs": np.ones((n, obs_dim), np.float32),
        "rewards": -1.0 - np.arange(n, dtype=np.float32),
    }
    return episodes_to_transitions([ep])


def test_capacity_and_dims_must_be_positive():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, 3, 2)
    with pytest.raises(ValueError, match="act_dim"):
        ReplayBuffer(5, 3, 0)


def test_ring_wraps_around_fifo():
    buf = ReplayBuffer(5, (3,), 2)
    _fill(buf, 7)
    assert len(buf) == 5 and buf.total_added == 7
    stored = sorted(buf.gather(np.arange(5)).reward.tolist())
    assert stored == [2.0, 3.0, 4.0, 5.0, 6.0]  # 0 and 1 were overwritten first
    np.testing.assert_array_equal(buf.gather(np.array([0, 1])).reward, [5.0, 6.0])  # slots 0, 1 reused
    batch = buf.sample(np.random.default_rng(0), 5)
    np.testing.assert_array_equal(batch.obs[:, 0], batch.reward)  # fields stay aligned row by row
    np.testing.assert_array_equal(batch.next_obs[:, 0], batch.reward + 1)


def test_batched_add_equals_single_adds_across_the_wrap():
    single, batched = ReplayBuffer(4, (2,), 1), ReplayBuffer(4, (2,), 1)
    obs = np.arange(12, dtype=np.float32).reshape(6, 2)
    act = np.linspace(-1, 1, 6, dtype=np.float32)[:, None]
    rew, term = np.arange(6, dtype=np.float32), np.array([0, 0, 1, 0, 0, 1], bool)
    for i in range(6):
        single.add(obs[i], act[i], rew[i], obs[i] + 1, term[i])
    batched.add(obs[:3], act[:3], rew[:3], obs[:3] + 1, term[:3])
    batched.add(obs[3:], act[3:], rew[3:], obs[3:] + 1, term[3:])
    idx = np.arange(4)
    for a, b in zip(single.gather(idx), batched.gather(idx)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="exceeds capacity 4"):
        batched.add(np.zeros((5, 2)), np.zeros((5, 1)), np.zeros(5), np.zeros((5, 2)), np.zeros(5))


def test_sampling_is_seeded_uniform_and_bounded():
    buf = ReplayBuffer(10, (1,), 1)
    with pytest.raises(ValueError, match=r"asked for 1 transitions but the buffer holds only 0"):
        buf.sample(np.random.default_rng(0), 1)
    _fill(buf, 4)
    with pytest.raises(ValueError, match=r"asked for 5 .* only 4"):
        buf.sample(np.random.default_rng(0), 5)
    a = buf.sample(np.random.default_rng(42), 4)
    b = buf.sample(np.random.default_rng(42), 4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    # Uniform over the 4 stored rows (never the 6 empty slots): counts of 4 x 4000 draws.
    rng = np.random.default_rng(1)
    draws = np.concatenate([buf.sample(rng, 4).reward for _ in range(4000)])
    counts = np.bincount(draws.astype(int), minlength=10)
    assert counts[4:].sum() == 0
    chi2 = ((counts[:4] - 4000) ** 2 / 4000).sum()
    assert chi2 < 16.3  # 99.9 % quantile of chi-square with 3 degrees of freedom


def test_add_rejects_bad_shapes_dtypes_and_values():
    buf = ReplayBuffer(8, (3,), 2)
    ok = dict(obs=np.zeros(3), action=np.zeros(2), reward=0.0, next_obs=np.zeros(3), terminal=False)
    buf.add(**ok)  # float64 in a float32 buffer is fine (same kind)
    with pytest.raises(ValueError, match=r"obs has shape \(4,\)"):
        buf.add(**{**ok, "obs": np.zeros(4)})
    with pytest.raises(ValueError, match=r"action has shape \(3,\), expected \(2,\)"):
        buf.add(**{**ok, "action": np.zeros(3)})
    with pytest.raises(ValueError, match=r"next_obs has shape \(2, 3\)"):
        buf.add(**{**ok, "next_obs": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="outside"):
        buf.add(**{**ok, "action": np.array([1.5, 0.0])})
    with pytest.raises(ValueError, match="non-finite"):
        buf.add(**{**ok, "reward": np.nan})
    with pytest.raises(ValueError, match="terminal must be 0/1"):
        buf.add(**{**ok, "terminal": 0.5})
    with pytest.raises(ValueError, match="last=0"):
        buf.add(**{**ok, "terminal": True, "last": False})
    img = ReplayBuffer(4, (8, 8, 3), 2, obs_dtype=np.uint8)
    frame = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(TypeError, match="dtype float64, expected uint8"):
        img.add(frame.astype(np.float64), np.zeros(2), 0.0, frame, False)
    with pytest.raises(TypeError, match="dtype int64, expected uint8"):
        img.add(frame, np.zeros(2), 0.0, frame.astype(np.int64), False)
    assert len(buf) == 1 and len(img) == 0  # failed adds store nothing


def test_uint8_images_stay_uint8():
    img = ReplayBuffer(4, (8, 8, 3), 2, obs_dtype=np.uint8)
    frames = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    img.add(frames, np.zeros((3, 2)), np.zeros(3), frames, np.zeros(3))
    batch = img.sample(np.random.default_rng(0), 3)
    assert batch.obs.dtype == np.uint8 and batch.next_obs.dtype == np.uint8
    assert img._frames[""].dtype == np.uint8 and img.frame_bytes == 8 * 8 * 3


def test_mixed_batch_shape_ratio_and_order():
    demos = _demos()
    buf = ReplayBuffer(50, (3,), 2)
    _fill(buf, 30)  # online rewards are >= 0, demo rewards <= -1
    for utd in (1, 4):
        b = mixed_batch(demos, buf, n_demo=6, n_online=10, rng=np.random.default_rng(0), utd=utd)
        assert isinstance(b, Transitions)
        assert b.obs.shape == (utd, 16, 3) and b.action.shape == (utd, 16, 2) and b.reward.shape == (utd, 16)
        assert np.all(b.reward[:, :6] <= -1) and np.all(b.reward[:, 6:] >= 0)  # demo rows first, exact ratio
        assert all(f.dtype == np.float32 for f in b if f is not None) and b.base_action is None
        # Demo rows carry their next_action; online rows have none (zeros).
        i = (-b.reward[:, :6] - 1).astype(int)
        np.testing.assert_array_equal(b.next_action[:, :6], demos.next_action[i])
        np.testing.assert_array_equal(b.obs[:, :6], demos.obs[i])
        np.testing.assert_array_equal(b.next_action[:, 6:], 0.0)
        np.testing.assert_array_equal(b.obs[:, 6:, 0], b.reward[:, 6:])
    # Same seed -> same batch; the UTD slices are different draws.
    b1 = mixed_batch(demos, buf, 6, 10, np.random.default_rng(3), utd=3)
    b2 = mixed_batch(demos, buf, 6, 10, np.random.default_rng(3), utd=3)
    for x, y in zip(b1, b2):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(b1.reward[0], b1.reward[1])
    # Offline-only and online-only batches are allowed.
    assert mixed_batch(demos, buf, 4, 0, np.random.default_rng(0)).obs.shape == (1, 4, 3)
    assert mixed_batch(demos, buf, 0, 4, np.random.default_rng(0)).obs.shape == (1, 4, 3)


def test_mixed_batch_errors():
    demos, buf = _demos(n=5), ReplayBuffer(50, (3,), 2)
    _fill(buf, 8)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n_online=9 but the replay buffer holds only 8"):
        mixed_batch(demos, buf, 2, 9, rng)
    assert mixed_batch(demos, buf, 6, 2, rng).obs.shape == (1, 8, 3)  # few demos, many rows: with replacement
    with pytest.raises(ValueError, match="demonstrations are empty"):
        mixed_batch(demos.take(np.arange(0)), buf, 1, 2, rng)
    with pytest.raises(ValueError, match="utd"):
        mixed_batch(demos, buf, 2, 2, rng, utd=0)
    with pytest.raises(ValueError, match="not both 0"):
        mixed_batch(demos, buf, 0, 0, rng)
    with pytest.raises(ValueError, match=r"replay stores \(4,\)"):
        mixed_batch(demos, ReplayBuffer(5, (4,), 2), 2, 0, rng)
    with pytest.raises(ValueError, match="uint8"):
        mixed_batch(demos, ReplayBuffer(5, (3,), 2, obs_dtype=np.uint8), 2, 0, rng)


def test_terminal_only_on_true_ends_timeouts_bootstrap():
    """A gymnasium loop stores terminal=terminated and last=terminated or truncated."""
    env = PointMassEnv("pointmass-reach", horizon=40)
    expert = make_expert("pointmass-reach", np.random.default_rng(0))
    buf = ReplayBuffer(1000, (6,), 2)
    outcomes = []
    for seed, policy in ((0, expert), (1, lambda o: np.zeros(2, np.float32))):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            act = policy(obs)
            nxt, _, terminated, truncated, _ = env.step(act)
            buf.add(obs, act, 0.0, nxt, terminated, last=terminated or truncated)
            obs, done = nxt, terminated or truncated
        outcomes.append((terminated, truncated))
    assert outcomes == [(True, False), (False, True)]  # one success, one time-out
    t = buf.gather(np.arange(len(buf)))
    ends = np.flatnonzero(t.last)
    assert len(ends) == 2 and ends[1] == len(buf) - 1
    assert t.terminal[ends[0]] == 1 and t.terminal[ends[1]] == 0  # the time-out still bootstraps
    assert t.terminal.sum() == 1


def test_state_dict_round_trip_continues_identically():
    a, b = ReplayBuffer(6, (3,), 2), ReplayBuffer(6, (3,), 2)
    _fill(a, 4)
    b.load_state_dict(a.state_dict())
    _fill(a, 5, start=100)
    _fill(b, 5, start=100)
    assert len(a) == len(b) == 6 and a.total_added == b.total_added == 9
    for x, y in zip(a.sample(np.random.default_rng(0), 6), b.sample(np.random.default_rng(0), 6)):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="capacity 6, this buffer 7"):
        ReplayBuffer(7, (3,), 2).load_state_dict(a.state_dict())


def test_toy_demos_mix_with_online_data():
    demos = episodes_to_transitions(collect_demos("pointmass-reach", 2, seed=0))
    buf = ReplayBuffer(100, (demos.obs_dim,), demos.act_dim)
    buf.add(demos.obs[:10], demos.action[:10], demos.reward[:10], demos.next_obs[:10], demos.terminal[:10])
    b = mixed_batch(demos, buf, 8, 8, np.random.default_rng(0), utd=2)
    assert b.obs.shape == (2, 16, 6) and b.terminal.shape == (2, 16)


def _episode_rows(rng, t, size=6):
    """One episode of t steps with dict observations (two uint8 cameras and a float vector): rows of
    (obs, next_obs) where next_obs[i] is obs[i + 1]."""
    frames = {"cam_a": rng.integers(0, 256, (t + 1, size, size, 3), dtype=np.uint8),
              "cam_b": rng.integers(0, 256, (t + 1, size, size, 3), dtype=np.uint8),
              "proprio": rng.normal(size=(t + 1, 4)).astype(np.float32)}
    obs = {k: v[:-1] for k, v in frames.items()}
    nxt = {k: v[1:] for k, v in frames.items()}
    last = np.zeros(t, np.float32)
    last[-1] = 1
    return obs, nxt, last


def _image_spec(size=6):
    from csil_lite.obs import Spec
    return {"cam_a": Spec((size, size, 3), np.uint8), "cam_b": Spec((size, size, 3), np.uint8),
            "proprio": Spec((4,), np.float32)}


def test_each_frame_is_stored_once_and_round_trips_exactly():
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(100, _image_spec(), 2)
    episodes = [_episode_rows(rng, t) for t in (7, 5, 9)]
    for obs, nxt, last in episodes[:2]:  # one step at a time, as the online loop adds them
        for i in range(len(last)):
            buf.add({k: v[i] for k, v in obs.items()}, np.zeros(2), 0.0, {k: v[i] for k, v in nxt.items()},
                    False, last=bool(last[i]))
    obs, nxt, last = episodes[2]
    buf.add(obs, np.zeros((9, 2)), np.zeros(9), nxt, np.zeros(9), last)  # and a batch
    assert len(buf) == 21 and buf._frames_written == 21 + 3  # T + 1 frames per episode, not 2T
    got = buf.gather(np.arange(21))
    for k in ("cam_a", "cam_b", "proprio"):
        want_obs = np.concatenate([e[0][k] for e in episodes])
        want_next = np.concatenate([e[1][k] for e in episodes])
        assert got.obs[k].dtype == want_obs.dtype
        np.testing.assert_array_equal(got.obs[k], want_obs)  # exact: uint8 in, the same uint8 out
        np.testing.assert_array_equal(got.next_obs[k], want_next)


def test_a_transition_that_does_not_continue_the_last_one_gets_its_own_frame():
    buf = ReplayBuffer(10, (2,), 1)
    buf.add(np.zeros(2), np.zeros(1), 0.0, np.ones(2), False)
    buf.add(np.full(2, 5.0), np.zeros(1), 0.0, np.full(2, 6.0), False)  # not the previous next_obs
    buf.add(np.full(2, 6.0), np.zeros(1), 0.0, np.full(2, 7.0), False, last=True)
    buf.add(np.full(2, 7.0), np.zeros(1), 0.0, np.full(2, 8.0), False)  # equal, but the last one ended its episode
    assert buf._frames_written == 2 + 2 + 1 + 2
    np.testing.assert_array_equal(buf.gather(np.arange(4)).obs[:, 0], [0, 5, 6, 7])
    np.testing.assert_array_equal(buf.gather(np.arange(4)).next_obs[:, 0], [1, 6, 7, 8])


def test_overwritten_frames_take_their_transitions_out():
    buf = ReplayBuffer(10, (1,), 1, frame_capacity=12)
    for i in range(30):  # one-step episodes: two frames each, so 12 frames hold 6 transitions
        buf.add(np.full(1, 2.0 * i), np.zeros(1), float(i), np.full(1, 2.0 * i + 1), False, last=True)
    assert len(buf) == 6
    got = buf.gather(buf.slots(np.arange(6)))
    assert got.reward.tolist() == list(range(24, 30))  # the newest whole transitions, oldest first
    np.testing.assert_array_equal(got.obs[:, 0], 2 * got.reward)
    np.testing.assert_array_equal(got.next_obs[:, 0], 2 * got.reward + 1)


def test_image_replay_memory_at_preview_and_paper_sizes():
    from csil_lite.obs import Spec
    cams = {"agentview_image": Spec((84, 84, 3), np.uint8), "robot0_eye_in_hand_image": Spec((84, 84, 3), np.uint8),
            "robot0_eef_pos": Spec((3,), np.float32)}
    one_frame = 2 * 84 * 84 * 3 + 12
    buf = ReplayBuffer(1000, cams, 7)
    assert buf.frame_bytes == one_frame
    assert one_frame < buf.bytes_per_transition < 1.15 * one_frame  # one frame a transition, not two
    assert ReplayBuffer(10_000, cams, 7).memory_bytes < 2**29  # the image preview (10k steps): well under 1 GB


def test_old_checkpoints_without_shared_frames_still_load():
    a = ReplayBuffer(6, (3,), 2)
    _fill(a, 9)  # wrapped: the old layout's slots are not in time order
    old = {"data/obs": a.gather(np.arange(6)).obs, "data/next_obs": a.gather(np.arange(6)).next_obs,
           **{f"data/{k}": a._data[k].copy() for k in ("action", "reward", "terminal", "last")},
           "meta": np.array([6, 9 % 6, 6, 9], np.int64)}
    b = ReplayBuffer(6, (3,), 2)
    b.load_state_dict(old)
    assert len(b) == 6 and b.total_added == 9
    for x, y in zip(a.gather(np.arange(6)), b.gather(np.arange(6))):
        np.testing.assert_array_equal(x, y)  # the same transitions in the same slots

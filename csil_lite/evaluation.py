"""Evaluation protocol: deterministic tanh(mean) actions, success rate and return over a fixed set of episodes.

The same episode seeds are used at every evaluation and for every method (common random numbers), so curves of
different methods differ by what they learned, not by which start states they happened to draw. When a learned
reward is given, its per-episode Pearson correlation with the task's dense "true" reward is reported too.
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np


def evaluate(
    env: gym.Env,
    act: Callable[[np.ndarray], np.ndarray],
    *,
    episodes: int,
    seed: int,
    reward_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> dict[str, float]:
    """Run `episodes` episodes with `act`; returns success rate, mean return/length and reward correlation."""
    seeds = np.random.SeedSequence([seed, 7_919]).generate_state(episodes)
    successes, returns, lengths, corrs = [], [], [], []
    for ep_seed in seeds:
        obs, _ = env.reset(seed=int(ep_seed))
        done, ret, t, success = False, 0.0, 0, False
        ep_obs, ep_act, ep_true = [], [], []
        while not done:
            a = np.asarray(act(obs), np.float32)
            nxt, r, terminated, truncated, info = env.step(a)
            ep_obs.append(obs)
            ep_act.append(a)
            ep_true.append(info.get("shaped_reward", r))
            ret += float(r)
            t += 1
            success = success or bool(info.get("success", False))
            done = terminated or truncated
            obs = nxt
        successes.append(success)
        returns.append(ret)
        lengths.append(t)
        if reward_fn is not None and t > 2:
            learned = np.asarray(reward_fn(np.stack(ep_obs), np.stack(ep_act)))
            true = np.asarray(ep_true, np.float64)
            if learned.std() > 1e-8 and true.std() > 1e-8:
                corrs.append(float(np.corrcoef(learned, true)[0, 1]))
    out = {
        "success_rate": float(np.mean(successes)),
        "return": float(np.mean(returns)),
        "episode_length": float(np.mean(lengths)),
    }
    if reward_fn is not None:
        out["reward_corr"] = float(np.mean(corrs)) if corrs else float("nan")
    return out


def median_iqr(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and the 25th / 75th percentiles across seeds (the paper's uncertainty bands)."""
    v = np.asarray(values, np.float64)
    return np.median(v, axis=axis), np.percentile(v, 25, axis=axis), np.percentile(v, 75, axis=axis)

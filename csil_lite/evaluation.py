"""Evaluation protocol: deterministic tanh(mean) actions, success rate and return over a fixed set of episodes.

The same episode seeds are used at every evaluation and for every method (common random numbers), so curves of
different methods differ by what they learned, not by which start states they happened to draw. When a learned
reward is given, its per-episode Pearson correlation with the task's dense "true" reward is reported too.

Several environments can run episodes in lockstep: one batched policy call per step instead of one per episode
and step. Episode i always uses seed i's start state on whichever environment runs it, so the result does not
depend on how many environments there are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import jax
import numpy as np

from csil_lite import obs as obs_lib


def _run_wave(envs: Sequence[gym.Env], act: Callable, seeds: np.ndarray) -> list[dict]:
    """Episodes with `seeds` run side by side on `envs[:len(seeds)]`. `act` sees the whole wave's batch at every
    step (a fixed shape, so no recompiles as episodes end); the rows of finished episodes are ignored."""
    n = len(seeds)
    obs = obs_lib.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, seeds)])  # a batch pytree
    eps = [{"obs": [], "act": [], "true": [], "return": 0.0, "success": False} for _ in range(n)]
    live = np.ones(n, bool)
    while live.any():
        actions = np.asarray(act(obs), np.float32)
        for i in np.flatnonzero(live):
            nxt, r, terminated, truncated, info = envs[i].step(actions[i])
            ep = eps[i]
            ep["obs"].append(jax.tree.map(lambda x: x[i].copy(), obs))
            ep["act"].append(actions[i])
            ep["true"].append(info.get("shaped_reward", r))
            ep["return"] += float(r)
            ep["success"] = ep["success"] or bool(info.get("success", False))
            live[i] = not (terminated or truncated)
            jax.tree.map(lambda x, y: x.__setitem__(i, y), obs, nxt)
    return eps


def _episodes(envs, act: Callable, episodes: int, seed: int, caller: str) -> list[dict]:
    """`episodes` episodes in waves of len(envs); episode i starts from seed i of the run's `seed`."""
    envs = [envs] if isinstance(envs, gym.Env) else list(envs)
    if not envs or episodes < 1:
        raise ValueError(f"{caller}: need at least one environment and episodes >= 1, got {len(envs)} and "
                         f"{episodes}")
    seeds = np.random.SeedSequence([seed, 7_919]).generate_state(episodes)
    eps: list[dict] = []
    for start in range(0, episodes, len(envs)):
        eps += _run_wave(envs, act, seeds[start:start + len(envs)])
    return eps


def _reward_correlation(eps: list[dict], reward_fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> float:
    """Mean per-episode Pearson correlation; the learned reward is computed in one call over all episodes."""
    learned = np.asarray(reward_fn(obs_lib.concat([obs_lib.stack(e["obs"]) for e in eps], xp=np),
                                   np.concatenate([np.stack(e["act"]) for e in eps])))
    corrs, start = [], 0
    for e in eps:
        n = len(e["act"])
        lr, true = learned[start:start + n], np.asarray(e["true"], np.float64)
        start += n
        if n > 2 and lr.std() > 1e-8 and true.std() > 1e-8:
            corrs.append(float(np.corrcoef(lr, true)[0, 1]))
    return float(np.mean(corrs)) if corrs else float("nan")


def evaluate(
    envs: gym.Env | Sequence[gym.Env],
    act: Callable[[np.ndarray], np.ndarray],
    *,
    episodes: int,
    seed: int,
    reward_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> dict[str, float]:
    """Run `episodes` episodes; returns success rate, mean return/length and (with `reward_fn`) reward correlation.

    `act` maps a batch of observations [n, obs_dim] to actions [n, act_dim]; with several `envs`, episodes run
    `len(envs)` at a time.
    """
    eps = _episodes(envs, act, episodes, seed, "evaluate")
    out = {
        "success_rate": float(np.mean([e["success"] for e in eps])),
        "return": float(np.mean([e["return"] for e in eps])),
        "episode_length": float(np.mean([len(e["act"]) for e in eps])),
    }
    if reward_fn is not None:
        out["reward_corr"] = _reward_correlation(eps, reward_fn)
    return out


def rollout_observations(envs: gym.Env | Sequence[gym.Env], act: Callable[[np.ndarray], np.ndarray], *,
                         episodes: int, seed: int) -> np.ndarray:
    """Every observation `act` met in `episodes` episodes, stacked [n, obs_dim] (flat observations): with the BC
    policy's own stochastic actions, the online states chapter 10 measures the entropy gap at (as the seed
    thesis did). Episode seeds as `evaluate`'s."""
    eps = _episodes(envs, act, episodes, seed, "rollout_observations")
    return np.stack([o for e in eps for o in e["obs"]]).astype(np.float32)


def final_seeds(seed: int, repeats: int) -> list[int]:
    """The evaluation seeds of the paper's final re-evaluations (one per repeat of E episodes): derived from the
    run's seed, disjoint in practice from the seed every evaluation during training uses."""
    return [int(np.random.SeedSequence([seed, 0xF1AA1, i]).generate_state(1)[0]) for i in range(repeats)]


def median_iqr(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and the 25th / 75th percentiles across seeds (the paper's uncertainty bands)."""
    v = np.asarray(values, np.float64)
    return np.median(v, axis=axis), np.percentile(v, 25, axis=axis), np.percentile(v, 75, axis=axis)


def steps_to_threshold(steps: Sequence[float], values: Sequence[float], threshold: float, *,
                       smooth: int = 1) -> float | None:
    """The first evaluated step at which `values` reaches `threshold` (value >= threshold); None if it never does.

    `steps` and `values` are one run's evaluation steps and its metric there (e.g. success rate), in step order.
    NaN values (a metric not recorded at that evaluation) never count as reached. `smooth` > 1: the trailing mean
    of the last `smooth` evaluations (fewer at the start) must reach it, so one lucky evaluation does not count.
    Reaching is compared to within 1e-9, so that e.g. the mean of 0.7, 0.9 and 0.8 reaches 0.8 whatever the
    rounding of the sum.
    """
    s, v = np.asarray(steps, np.float64), np.asarray(values, np.float64)
    if s.ndim != 1 or s.shape != v.shape or smooth < 1:
        raise ValueError(f"steps_to_threshold: need 1-D steps and values of one length and smooth >= 1, got shapes "
                         f"{s.shape} and {v.shape}, smooth {smooth}")
    v = np.array([v[max(0, i - smooth + 1): i + 1].mean() for i in range(len(v))]) if smooth > 1 else v
    if s.size > 1 and np.any(np.diff(s) <= 0):
        raise ValueError(f"steps_to_threshold: steps must be strictly increasing, got {s.tolist()}")
    hit = np.flatnonzero(v >= threshold - 1e-9)  # a mean of rates equal to the threshold counts despite rounding
    if hit.size == 0:
        return None
    first = s[hit[0]]
    return int(first) if float(first).is_integer() else float(first)


def success_auc(steps: Sequence[float], values: Sequence[float], up_to: float | None = None) -> float:
    """The area under one run's success curve from step 0 to `up_to` (default: its last evaluated step), by the
    trapezoid rule between evaluations, divided by `up_to`: the mean success over the run, in [0, 1] for success
    rates. The primary metric of chapter 6's pre-registered comparison (paired over common seeds)."""
    s, v = np.asarray(steps, np.float64), np.asarray(values, np.float64)
    if s.ndim != 1 or s.shape != v.shape or s.size < 2 or s[0] != 0 or np.any(np.diff(s) <= 0):
        raise ValueError(f"success_auc: need strictly increasing steps from 0 with one value each, got steps "
                         f"{s.tolist()[:5]}... and {v.size} values")
    end = float(s[-1]) if up_to is None else float(up_to)
    if not 0 < end <= s[-1]:
        raise ValueError(f"success_auc: up_to = {up_to} outside the evaluated range (0, {s[-1]:g}]")
    grid = np.union1d(s[s <= end], [end])
    curve = np.interp(grid, s, v)
    return float(np.sum((curve[1:] + curve[:-1]) / 2 * np.diff(grid)) / end)

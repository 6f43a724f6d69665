"""A base policy inside an environment: `ChunkedBaseEnv` runs the chunk executor at every episode step.

The wrapper owns a `ChunkExecutor` and resets it in `reset()`, so a new episode always starts with a fresh
chunk. After `reset()` and after every non-final `step()` it already holds the base action for the *next* step
(`base_action`, `chunk_index`, also in `info`), because a small policy acting next to the base has to see it
before choosing its own action. The executed action is `compose(base_action, action)`; the default executes the
base alone and ignores `action`, which is how `evaluate_base` measures a base through `evaluate()`.

A base whose sampler can be reseeded (the stand-in's `reseed`) is reseeded at every `reset(seed=s)` from `s`, so
its noise in an episode depends on the episode's seed only: a resumed run (episodes reset with seeds derived
from their index) and every evaluation (the same episode seeds each time) see the same base actions as an
uninterrupted run. A remote pi0.5 samples its own noise; runs with it repeat only up to that noise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from csil_lite.base.policy import BasePolicy, ChunkExecutor, lowdim_request

__all__ = ["ChunkedBaseEnv", "base_only", "evaluate_base"]


def base_only(base_action: np.ndarray, action: np.ndarray) -> np.ndarray:
    """Execute the base's action; the agent's action is ignored."""
    return base_action


class ChunkedBaseEnv(gym.Wrapper):
    """`env` driven (in part) by `base`, queried every `execute_steps` steps (see the module docstring)."""

    def __init__(self, env: gym.Env, base: BasePolicy, execute_steps: int | None = None, *,
                 compose: Callable[[np.ndarray, np.ndarray], np.ndarray] = base_only,
                 make_request: Callable[[Any], dict] = lowdim_request, owns_base: bool = False) -> None:
        """`owns_base`: `close()` also closes the base (a connection of its own to a server); leave it False
        for a base shared with other environments."""
        super().__init__(env)
        self.owns_base = owns_base
        self.executor = ChunkExecutor(base, execute_steps, make_request)
        self.compose = compose
        self.base_action: np.ndarray | None = None
        self.chunk_index = -1

    def _advance(self, obs: Any, info: dict) -> dict:
        self.base_action = self.executor.step(obs)
        self.chunk_index = self.executor.index
        return {**info, "base_action": self.base_action, "chunk_index": self.chunk_index}

    def reset(self, **kwargs: Any):
        self.executor.reset()
        reseed = getattr(self.executor.base, "reseed", None)
        if kwargs.get("seed") is not None and reseed is not None:
            reseed(int(np.random.SeedSequence([int(kwargs["seed"]), 0xBA5E]).generate_state(1)[0]))
        obs, info = self.env.reset(**kwargs)
        return obs, self._advance(obs, info)

    def close(self) -> None:
        super().close()
        close = getattr(self.executor.base, "close", None)
        if self.owns_base and close is not None:
            close()

    def step(self, action):
        if self.base_action is None:
            raise RuntimeError("ChunkedBaseEnv.step before reset(): call reset() at the start of every episode")
        executed = np.asarray(self.compose(self.base_action, np.asarray(action)), np.float32)
        obs, reward, terminated, truncated, info = self.env.step(executed)
        info = {**info, "executed_action": executed}
        if terminated or truncated:  # no query past the episode's end: ceil(T / N) queries in T steps
            self.base_action, self.chunk_index = None, -1
        else:
            info = self._advance(obs, info)
        return obs, reward, terminated, truncated, info


def evaluate_base(task: str, make_base: Callable[[], BasePolicy], *, episodes: int, seed: int,
                  execute_steps: int | None = None, num_envs: int = 1, **env_kwargs: Any) -> dict[str, float]:
    """Success rate, return and episode length of a base alone on `task` (csil_lite.evaluation's protocol,
    same episode seeds). `make_base()` is called once per environment (a remote base: one connection each)."""
    from csil_lite.envs.registry import make_env
    from csil_lite.evaluation import evaluate

    envs = [ChunkedBaseEnv(make_env(task, seed=seed + i, **env_kwargs), make_base(), execute_steps)
            for i in range(num_envs)]
    act_dim = envs[0].action_space.shape[0]
    out = evaluate(envs, lambda obs: np.zeros((len(obs), act_dim), np.float32), episodes=episodes, seed=seed)
    out["base_queries"] = float(sum(e.executor.queries for e in envs))
    return out

"""The base-policy protocol, the observation spec a base declares, and the chunk executor.

A *base policy* is a large behaviour model (pi0.5 on a GPU server, or the CPU stand-in trained here) that maps
an observation dict to a chunk of actions. Everything downstream sees only `BasePolicy`:

- ``infer(obs) -> {"actions": float32 [H, d], ...}``: obs is the dict a pi0.5 server would receive
  (string keys, numpy values; images and a prompt may be present).
- ``reset()``: forget per-episode state (a remote pi0.5 has none; kept for openpi's interface).
- ``metadata``: a dict with at least ``action_horizon`` (H), ``action_dim`` (d) and ``observation_spec``
  (key -> {"shape": [...], "dtype": "<f4" | "|u1" | "str", "required": bool}; -1 in a shape is any size).

`ChunkExecutor` runs a base the way the paper does: it queries a chunk every N steps (N <= H) and hands out
one row per step, open-loop in between, together with the row's index in the chunk. It is reset at every
episode start, so a chunk never leaks from one episode into the next (a bug peers' users hit when labelling
demonstrations with base actions; `label_episodes` resets per episode for that reason).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "LOWDIM_KEY",
    "PROMPT_KEY",
    "BasePolicy",
    "CallableBase",
    "ChunkExecutor",
    "FieldSpec",
    "ObservationError",
    "check_metadata",
    "check_observation",
    "label_episodes",
    "lowdim_request",
    "queries_per_episode",
]

# The stand-in's low-dim input: the flattened state vector of the task (toy: the env observation; robosuite:
# csil_lite.envs.robosuite.STATE_KEYS). pi0.5's LIBERO config reads `observation/state` (8 values) and
# ignores keys it does not know, so the same request can carry both.
LOWDIM_KEY = "observation/lowdim"
PROMPT_KEY = "prompt"


class ObservationError(ValueError):
    """An observation dict that does not match a base's `observation_spec` (the message names key and issue)."""


@runtime_checkable
class BasePolicy(Protocol):
    """What a base policy offers: openpi's `BasePolicy` plus the server's metadata."""

    @property
    def metadata(self) -> dict[str, Any]: ...

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]: ...

    def reset(self) -> None: ...


@dataclass(frozen=True)
class FieldSpec:
    """One observation key: its shape (-1: any size), dtype string (numpy's `dtype.str`, or "str") and whether
    it must be present. Float fields accept any float dtype (pi0.5 clients send float64 states)."""

    shape: tuple[int, ...]
    dtype: str
    required: bool = True

    def __post_init__(self) -> None:
        if any((not isinstance(s, int)) or s < -1 or s == 0 for s in self.shape):
            raise ValueError(f"FieldSpec: shape {self.shape} must hold positive sizes or -1 (any size)")
        if self.dtype != "str":
            np.dtype(self.dtype)  # raises TypeError for an unknown dtype string

    def to_wire(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype, "required": self.required}

    @classmethod
    def from_wire(cls, key: str, value: Any) -> FieldSpec:
        try:
            return cls(tuple(int(s) for s in value["shape"]), str(value["dtype"]), bool(value.get("required", True)))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"observation_spec[{key!r}]: expected {{shape, dtype, required}}, got {value!r} "
                             f"({e})") from None


def check_metadata(metadata: Mapping[str, Any]) -> dict[str, FieldSpec]:
    """The parsed `observation_spec` of `metadata`, after checking the keys every base must declare."""
    if not isinstance(metadata, Mapping):
        raise ValueError(f"base metadata: expected a map, got {type(metadata).__name__}")
    for key in ("action_horizon", "action_dim", "observation_spec"):
        if key not in metadata:
            raise ValueError(f"base metadata: missing {key!r} (has {sorted(metadata)})")
    for key in ("action_horizon", "action_dim"):
        if not isinstance(metadata[key], int) or metadata[key] < 1:
            raise ValueError(f"base metadata: {key} must be an integer >= 1, got {metadata[key]!r}")
    spec = metadata["observation_spec"]
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"base metadata: observation_spec must be a non-empty map, got {spec!r}")
    return {str(k): FieldSpec.from_wire(str(k), v) for k, v in spec.items()}


def check_observation(obs: Any, spec: Mapping[str, FieldSpec], *, passthrough: Sequence[str] = ()) -> None:
    """Raise `ObservationError` naming the first problem of `obs` against `spec`: not a map, a missing or unknown
    key, a wrong shape or dtype, a non-finite value. Keys in `passthrough` (e.g. a request id) are allowed."""
    if not isinstance(obs, Mapping):
        raise ObservationError(f"observation must be a map of key -> value, got {type(obs).__name__}")
    missing = [k for k, f in spec.items() if f.required and k not in obs]
    if missing:
        raise ObservationError(f"observation misses required key(s) {missing}; expected keys {sorted(spec)}")
    extra = [k for k in obs if k not in spec and k not in passthrough]
    if extra:
        raise ObservationError(f"observation has unknown key(s) {sorted(map(str, extra))}; expected keys "
                               f"{sorted(spec)}")
    for key, field in spec.items():
        if key not in obs:
            continue
        value = obs[key]
        if field.dtype == "str":
            if not isinstance(value, str):
                raise ObservationError(f"observation[{key!r}]: expected a str, got {type(value).__name__}")
            continue
        if not isinstance(value, np.ndarray):
            raise ObservationError(f"observation[{key!r}]: expected a numpy array of dtype {field.dtype} and shape "
                                   f"{list(field.shape)}, got {type(value).__name__}")
        want = np.dtype(field.dtype)
        same_family = value.dtype == want or (want.kind == "f" and value.dtype.kind == "f")
        if not same_family:
            raise ObservationError(f"observation[{key!r}]: dtype {value.dtype.str}, expected {want.str}")
        if value.ndim != len(field.shape) or any(s not in (-1, v) for s, v in zip(field.shape, value.shape)):
            raise ObservationError(f"observation[{key!r}]: shape {list(value.shape)}, expected "
                                   f"{list(field.shape)} (-1: any size)")
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
            raise ObservationError(f"observation[{key!r}]: {bad} non-finite value(s) (NaN or inf)")


def lowdim_request(obs: np.ndarray, prompt: str | None = None) -> dict[str, Any]:
    """The request dict for a flat state observation: float32 under `LOWDIM_KEY` (+ the prompt if given)."""
    out: dict[str, Any] = {LOWDIM_KEY: np.asarray(obs, np.float32)}
    if prompt is not None:
        out[PROMPT_KEY] = prompt
    return out


def queries_per_episode(steps: int, execute_steps: int) -> int:
    """Base queries in a `steps`-step episode when a chunk is requested every `execute_steps` steps."""
    return math.ceil(steps / execute_steps)


class ChunkExecutor:
    """Queries `base` every `execute_steps` steps and hands out one chunk row per step.

    Call `reset()` at every episode start and `step(obs)` once per env step; `step` returns the row to execute
    and stores it with its chunk index in `action` / `index`. Rows `execute_steps .. H-1` of a chunk are never
    used (N = H executes the whole chunk, as the paper does with pi0.5's 10).
    """

    def __init__(self, base: BasePolicy, execute_steps: int | None = None,
                 make_request: Callable[[Any], Mapping[str, Any]] = lowdim_request) -> None:
        meta = base.metadata
        check_metadata(meta)
        self.base, self.horizon, self.action_dim = base, int(meta["action_horizon"]), int(meta["action_dim"])
        n = min(10, self.horizon) if execute_steps is None else int(execute_steps)
        if not 1 <= n <= self.horizon:
            raise ValueError(f"ChunkExecutor: execute_steps={execute_steps}, expected 1 <= N <= the base's "
                             f"action_horizon {self.horizon}")
        self.execute_steps, self.make_request = n, make_request
        self.queries = 0  # base calls since construction (tests and benchmarks read it)
        self._chunk: np.ndarray | None = None
        self.index = -1  # index in the chunk of the last action handed out (-1: none this episode)
        self.action: np.ndarray | None = None

    def reset(self) -> None:
        """New episode: drop the chunk, so the next `step` queries the base."""
        self._chunk, self.index, self.action = None, -1, None
        self.base.reset()

    def step(self, obs: Any) -> np.ndarray:
        """The base action for this step (a fresh chunk at the episode's first step and every N steps after)."""
        if self._chunk is None or self.index + 1 >= self.execute_steps:
            reply = self.base.infer(self.make_request(obs))
            chunk = np.asarray(reply["actions"], np.float32)
            if chunk.shape != (self.horizon, self.action_dim):
                raise ValueError(f"base returned actions of shape {list(chunk.shape)}, expected "
                                 f"[{self.horizon}, {self.action_dim}] (its metadata)")
            self._chunk, self.index = chunk, -1
            self.queries += 1
        self.index += 1
        self.action = self._chunk[self.index]
        return self.action


def label_episodes(base: BasePolicy, episodes_obs: Sequence[np.ndarray], execute_steps: int | None = None,
                   make_request: Callable[[Any], Mapping[str, Any]] = lowdim_request
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Base actions and chunk indices along each demonstration's observations ([T, ...] per episode), as the
    executor would produce them running the episode: (actions [T, d], index [T]) per episode. The executor is
    reset at the start of every episode."""
    ex = ChunkExecutor(base, execute_steps, make_request)
    out = []
    for obs in episodes_obs:
        ex.reset()
        acts, idx = [], []
        for o in obs:
            acts.append(ex.step(o))
            idx.append(ex.index)
        out.append((np.stack(acts).astype(np.float32), np.asarray(idx, np.int32)))
    return out


class CallableBase:
    """A `BasePolicy` from a function `chunk(lowdim [obs_dim]) -> [H, d]` (tests, benchmarks, scripted bases).

    It declares `LOWDIM_KEY` of shape [obs_dim] (float32) as its only input, plus an optional prompt."""

    def __init__(self, chunk: Callable[[np.ndarray], np.ndarray], obs_dim: int, action_dim: int,
                 horizon: int = 10, name: str = "callable") -> None:
        self.chunk, self.calls = chunk, 0
        self.spec = {LOWDIM_KEY: FieldSpec((obs_dim,), "<f4"), PROMPT_KEY: FieldSpec((), "str", required=False)}
        self._metadata = {"model": name, "action_horizon": horizon, "action_dim": action_dim,
                          "observation_spec": {k: f.to_wire() for k, f in self.spec.items()}}

    @property
    def metadata(self) -> dict[str, Any]:
        return self._metadata

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        check_observation(obs, self.spec)
        self.calls += 1
        return {"actions": np.asarray(self.chunk(np.asarray(obs[LOWDIM_KEY])), np.float32)}

    def reset(self) -> None:
        pass

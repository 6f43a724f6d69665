"""The one container every learner reads: flat arrays of transitions with episode structure kept.

`next_action` is the demonstrator's action at `next_obs` *within the same episode*; at the last step of an
episode it is undefined, which `last` marks. Critic pretraining (SARSA) must mask those rows instead of pairing
them with the next episode's first action (a quirk of the reference code that we do not copy).
`terminal` means "no bootstrap" (true absorbing end); a time-limit truncation has `last=1, terminal=0`.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np


class Transitions(NamedTuple):
    obs: np.ndarray  # [N, obs_dim] float32
    action: np.ndarray  # [N, act_dim] float32 in [-1, 1]
    reward: np.ndarray  # [N] float32 (environment reward; CSIL never learns from it)
    next_obs: np.ndarray  # [N, obs_dim]
    next_action: np.ndarray  # [N, act_dim]; zeros where last == 1
    terminal: np.ndarray  # [N] float32, 1 = absorbing end, do not bootstrap
    last: np.ndarray  # [N] float32, 1 = final step of its episode (terminal or time-out)

    @property
    def size(self) -> int:
        return int(self.obs.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.obs.shape[-1])

    @property
    def act_dim(self) -> int:
        return int(self.action.shape[-1])

    def take(self, idx: np.ndarray) -> "Transitions":
        """Rows `idx` of every field (numpy fancy indexing)."""
        return Transitions(*(f[idx] for f in self))


def flatten_obs(obs: Mapping[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
    """Concatenate named observation arrays in the declared key order along the last axis.

    Raises a KeyError naming the missing key and the keys that are present: a silent reordering or a missing
    object pose would train a policy on the wrong inputs.
    """
    missing = [k for k in keys if k not in obs]
    if missing:
        raise KeyError(f"observation keys {missing} missing; present: {sorted(obs)}")
    parts = [np.asarray(obs[k], dtype=np.float32) for k in keys]
    lead = parts[0].shape[:-1] if parts[0].ndim > 0 else ()
    parts = [p.reshape(*lead, -1) if p.ndim > len(lead) else p.reshape(*lead, 1) for p in parts]
    return np.concatenate(parts, axis=-1)


def episodes_to_transitions(episodes: Sequence[Mapping[str, np.ndarray]]) -> Transitions:
    """Build `Transitions` from episodes, each a mapping with

    - `obs` [T, obs_dim], `actions` [T, act_dim], `next_obs` [T, obs_dim],
    - optional `rewards` [T] (default 0) and `terminal` (bool, default False: the episode was cut by a
      time limit or by success-based early stopping, so its last transition still bootstraps).
    """
    if len(episodes) == 0:
        raise ValueError("episodes_to_transitions: no episodes given")
    fields: dict[str, list[np.ndarray]] = {k: [] for k in Transitions._fields}
    for i, ep in enumerate(episodes):
        obs = np.asarray(ep["obs"], np.float32)
        act = np.asarray(ep["actions"], np.float32)
        nxt = np.asarray(ep["next_obs"], np.float32)
        t = act.shape[0]
        if t == 0:
            raise ValueError(f"episode {i} is empty")
        if obs.shape[0] != t or nxt.shape[0] != t:
            raise ValueError(
                f"episode {i}: obs {obs.shape}, actions {act.shape}, next_obs {nxt.shape} differ in length"
            )
        rew = np.asarray(ep.get("rewards", np.zeros(t)), np.float32).reshape(t)
        last = np.zeros(t, np.float32)
        last[-1] = 1.0
        term = np.zeros(t, np.float32)
        term[-1] = float(bool(ep.get("terminal", False)))
        next_act = np.concatenate([act[1:], np.zeros_like(act[:1])], axis=0)
        for k, v in dict(
            obs=obs, action=act, reward=rew, next_obs=nxt, next_action=next_act, terminal=term, last=last
        ).items():
            fields[k].append(v)
    return Transitions(**{k: np.concatenate(v, axis=0) for k, v in fields.items()})

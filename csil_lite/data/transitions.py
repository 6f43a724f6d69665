"""The one container every learner reads: flat arrays of transitions with episode structure kept.

`next_action` is the demonstrator's action at `next_obs` *within the same episode*; at the last step of an
episode it is undefined, which `last` marks. Critic pretraining (SARSA) must mask those rows instead of pairing
them with the next episode's first action (a quirk of the reference code that we do not copy).
`terminal` means "no bootstrap" (true absorbing end); a time-limit truncation has `last=1, terminal=0`.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import jax
import numpy as np

from csil_lite import obs as obs_lib
from csil_lite.obs import flatten_obs  # noqa: F401  (re-exported: data.flatten_obs)


class Transitions(NamedTuple):
    """Rows of transitions. `obs`/`next_obs` are observation pytrees (`csil_lite.obs`): an array [N, obs_dim]
    for states, or a dict of named arrays [N, ...] each with its own dtype (uint8 images stay uint8).

    `base_action` is the base policy's proposal at each row's state (`csil_lite.base.compose`): for
    demonstrations the base's action at the demonstrated state, for replay the one the executed action was
    composed with. It is None when there is no base. Why None and not zeros of the action's shape: None is a
    pytree node without leaves, so `jax.tree.map` (`take`, device transfers, `jit`) passes it through untouched
    and a run without a base carries, stores and transfers nothing for it; zeros would cost a [N, d] array in
    every batch and could not be told from a base that proposes 0 (a composition handed them would silently
    compose with a phantom base). Two `Transitions` mapped together must agree on having it or not.
    """

    obs: Any  # [N, obs_dim] float32, or a dict of [N, ...] arrays
    action: np.ndarray  # [N, act_dim] float32 in [-1, 1]
    reward: np.ndarray  # [N] float32 (environment reward; CSIL never learns from it)
    next_obs: Any  # like obs
    next_action: np.ndarray  # [N, act_dim]; zeros where last == 1
    terminal: np.ndarray  # [N] float32, 1 = absorbing end, do not bootstrap
    last: np.ndarray  # [N] float32, 1 = final step of its episode (terminal or time-out)
    base_action: np.ndarray | None = None  # [N, act_dim] float32: the base's proposal at obs; None: no base

    @property
    def size(self) -> int:
        return int(self.action.shape[0])

    @property
    def obs_spec(self) -> Any:
        """The observation pytree's per-leaf (shape, dtype) without the batch axis."""
        return obs_lib.spec_of(self.obs)

    @property
    def obs_dim(self) -> int:
        """Width of a flat (array) observation; a dict observation has no single width."""
        if not hasattr(self.obs, "shape"):
            raise TypeError(f"obs_dim: the observations are a {type(self.obs).__name__} of arrays "
                            f"{obs_lib.shapes(self.obs)}, not one array")
        return int(self.obs.shape[-1])

    @property
    def act_dim(self) -> int:
        return int(self.action.shape[-1])

    def take(self, idx: np.ndarray) -> "Transitions":
        """Rows `idx` of every field (numpy fancy indexing), observation pytrees included."""
        return jax.tree.map(lambda f: f[idx], self)


def episodes_to_transitions(episodes: Sequence[Mapping[str, np.ndarray]]) -> Transitions:
    """Build `Transitions` from episodes, each a mapping with

    - `obs` [T, obs_dim], `actions` [T, act_dim], `next_obs` [T, obs_dim] (or observation dicts of [T, ...]
      arrays: float leaves become float32, integer ones such as uint8 images keep their dtype),
    - optional `rewards` [T] (default 0) and `terminal` (bool, default False: the episode was cut by a
      time limit or by success-based early stopping, so its last transition still bootstraps),
    - optional `base_actions` [T, act_dim]: the base's proposal at each state (`Transitions.base_action`);
      every episode or none.
    """
    if len(episodes) == 0:
        raise ValueError("episodes_to_transitions: no episodes given")
    fields: dict[str, list[np.ndarray]] = {k: [] for k in Transitions._fields}
    with_base = [("base_actions" in ep) for ep in episodes]
    if any(with_base) and not all(with_base):
        raise ValueError(f"episodes_to_transitions: episodes {[i for i, b in enumerate(with_base) if not b]} have "
                         "no base_actions while others have: all or none")
    for i, ep in enumerate(episodes):
        obs, nxt = _obs_arrays(ep["obs"]), _obs_arrays(ep["next_obs"])
        act = np.asarray(ep["actions"], np.float32)
        t = act.shape[0]
        if t == 0:
            raise ValueError(f"episode {i} is empty")
        if any(np.shape(x)[0] != t for x in jax.tree.leaves((obs, nxt))):
            raise ValueError(f"episode {i}: obs {obs_lib.shapes(obs)}, actions {act.shape}, next_obs "
                             f"{obs_lib.shapes(nxt)} differ in length")
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
        if with_base[0]:
            base = np.asarray(ep["base_actions"], np.float32)
            if base.shape != act.shape:
                raise ValueError(f"episode {i}: base_actions {base.shape}, expected the actions' {act.shape}")
            fields["base_action"].append(base)
    return Transitions(**{k: obs_lib.concat(v, xp=np) for k, v in fields.items() if v})


def _obs_arrays(obs: Any) -> Any:
    """An observation pytree as numpy arrays: floats as float32, other dtypes (uint8 images) kept."""
    def one(x):
        x = np.asarray(x)
        return x.astype(np.float32) if x.dtype.kind == "f" else x
    return jax.tree.map(one, obs)

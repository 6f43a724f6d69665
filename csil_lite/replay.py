"""Replay of online transitions and the fixed-ratio demo/online batches CSIL trains on.

Why a plain numpy ring buffer: uniform sampling with FIFO removal (the reference's Reverb table) needs nothing
more, and preallocated arrays make a batch one fancy-index per field. Observations keep their own dtype, so
uint8 images stay uint8 (4x smaller) until the encoder. Demonstrations are never inserted: `mixed_batch` draws
demo rows from the demo `Transitions` and online rows from the buffer, every batch in the same ratio.

`terminal` is 1 only for a true absorbing end (e.g. success in the toy tasks); a time-limit truncation is
stored with `terminal=0, last=1`, so the critic still bootstraps through it.

Observations are pytrees (`csil_lite.obs`): each leaf (a dict observation's key) is stored in its own array with
its own dtype, and batches come out as the same pytree.

With a base policy (`csil_lite.base.compose`), a buffer made with `base_actions=True` also stores the base's
action at each state (`Transitions.base_action`), the one the executed action was composed with; the demos then
carry theirs, and `mixed_batch` draws both. Without a base the field is None everywhere and costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from csil_lite import obs as obs_lib
from csil_lite.data.transitions import Transitions


def _check_array(name: str, x: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Convert `x` to `dtype` if no kind of information is lost; else raise naming field, shape, dtype."""
    arr = np.asarray(x)
    if arr.shape != shape:
        raise ValueError(f"replay.add: {name} has shape {arr.shape}, expected {shape}")
    if arr.dtype != dtype:
        if dtype.kind in "iub":  # e.g. uint8 images: an int64 or float array would wrap or truncate
            ok = False
        else:
            ok = arr.dtype.kind == "b" or np.can_cast(arr.dtype, dtype, casting="same_kind")
        if not ok:
            raise TypeError(f"replay.add: {name} has dtype {arr.dtype}, expected {dtype} (no lossy casts)")
        arr = arr.astype(dtype)
    if dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"replay.add: {name} contains non-finite values")
    return arr


class ReplayBuffer:
    """Fixed-capacity FIFO ring buffer of transitions with uniform sampling with replacement.

    Args:
      capacity: number of transitions kept; the oldest are overwritten first.
      obs_spec: one observation's layout: a shape (e.g. (obs_dim,) or (84, 84, 3)), or a pytree of
        `csil_lite.obs.Spec` (shape, dtype) per key, e.g. `Transitions.obs_spec` of the demonstrations. Every
        leaf is stored in its own array with its own dtype.
      act_dim: action dimension; actions must lie in [-1, 1] (checked on `add`).
      obs_dtype: storage dtype of a shape-only `obs_spec` (float32 for states, uint8 for images).
      base_actions: also store the base policy's action [act_dim] of every transition (`add(base_action=...)`
        then requires it); the base's raw proposal is kept (finite, not range-checked: the composition clips).
    """

    def __init__(self, capacity: int, obs_spec: Any, act_dim: int, obs_dtype: Any = np.float32, *,
                 base_actions: bool = False):
        if int(capacity) <= 0:
            raise ValueError(f"ReplayBuffer: capacity must be > 0, got {capacity}")
        if int(act_dim) <= 0:
            raise ValueError(f"ReplayBuffer: act_dim must be > 0, got {act_dim}")
        self.capacity = int(capacity)
        if np.isscalar(obs_spec) or (isinstance(obs_spec, Sequence) and not isinstance(obs_spec, obs_lib.Spec)
                                     and all(np.isscalar(d) for d in obs_spec)):
            shape = (int(obs_spec),) if np.isscalar(obs_spec) else tuple(int(d) for d in obs_spec)
            obs_spec = obs_lib.Spec(shape, obs_dtype)
        self.obs_spec = obs_spec
        self.act_dim = int(act_dim)
        paths_specs = jax.tree_util.tree_flatten_with_path(obs_spec, is_leaf=obs_lib.is_spec)[0]
        self._obs_def = jax.tree.structure(obs_spec, is_leaf=obs_lib.is_spec)
        # Field names: "obs" for a single array; "obs_0", "obs_1", ... per leaf (in `obs_spec`'s leaf order).
        self._obs_keys = [""] if obs_lib.is_spec(obs_spec) else [f"_{i}" for i in range(len(paths_specs))]
        self._shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        for prefix in ("obs", "next_obs"):
            for key, (_, spec) in zip(self._obs_keys, paths_specs):
                self._shapes[prefix + key] = (spec.shape, spec.dtype)
        self._shapes.update({
            "action": ((self.act_dim,), np.dtype(np.float32)),
            "reward": ((), np.dtype(np.float32)),
            "terminal": ((), np.dtype(np.float32)),
            "last": ((), np.dtype(np.float32)),
        })
        self.base_actions = bool(base_actions)
        if self.base_actions:
            self._shapes["base_action"] = ((self.act_dim,), np.dtype(np.float32))
        self._data = {k: np.zeros((self.capacity, *s), d) for k, (s, d) in self._shapes.items()}
        self._next = 0  # slot of the next write
        self._size = 0
        self._added = 0  # total transitions ever added (for logging / "learning starts")

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """The shape of a single-array observation (a dict observation has one per key: `obs_spec`)."""
        if not obs_lib.is_spec(self.obs_spec):
            raise TypeError(f"obs_shape: this buffer stores dict observations {self.obs_spec}")
        return self.obs_spec.shape

    @property
    def obs_dtype(self) -> np.dtype:
        if not obs_lib.is_spec(self.obs_spec):
            raise TypeError(f"obs_dtype: this buffer stores dict observations {self.obs_spec}")
        return self.obs_spec.dtype

    @property
    def bytes_per_transition(self) -> int:
        """Memory of one stored transition, all fields."""
        return sum(int(np.prod(s)) * d.itemsize for s, d in self._shapes.values())

    def __len__(self) -> int:
        return self._size

    @property
    def size(self) -> int:
        return self._size

    @property
    def total_added(self) -> int:
        return self._added

    def _obs_leaves(self, name: str, obs: Any) -> dict[str, Any]:
        try:
            leaves = self._obs_def.flatten_up_to(obs)
        except (ValueError, TypeError) as e:
            raise ValueError(f"replay.add: {name} does not have the stored observation layout "
                             f"{self.obs_spec}: {e}") from None
        return {name + k: v for k, v in zip(self._obs_keys, leaves)}

    def _obs_tree(self, name: str, idx: Any) -> Any:
        return self._obs_def.unflatten([self._data[name + k][idx] for k in self._obs_keys])

    def add(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminal: Any,
        last: Any | None = None,
        base_action: Any | None = None,
    ) -> None:
        """Store one transition, or a batch when `action` has a leading batch axis.

        `terminal`: 1/True only for a true absorbing end (never for a time-limit truncation).
        `last`: 1/True at the final step of an episode (terminal *or* truncated); defaults to `terminal`. Pass
        `last=terminated or truncated` from a gymnasium loop.
        `base_action`: the base's action the executed one was composed with; required by a buffer made with
        `base_actions=True`, refused by one without.
        """
        if (base_action is None) == self.base_actions:
            raise ValueError("replay.add: this buffer stores base actions, pass base_action" if self.base_actions
                             else "replay.add: base_action given, but this buffer was made without base_actions=True")
        values = {**self._obs_leaves("obs", obs), **self._obs_leaves("next_obs", next_obs)}
        first_key = "obs" + self._obs_keys[0]
        n_lead = np.ndim(values[first_key]) - len(self._shapes[first_key][0])
        if n_lead not in (0, 1):
            raise ValueError(
                f"replay.add: obs has shape {np.shape(values[first_key])}, "
                f"expected {self._shapes[first_key][0]} or (batch, *{self._shapes[first_key][0]})"
            )
        lead: tuple[int, ...] = () if n_lead == 0 else (int(np.shape(values[first_key])[0]),)
        n = 1 if n_lead == 0 else lead[0]
        if n > self.capacity:
            raise ValueError(f"replay.add: batch of {n} transitions exceeds capacity {self.capacity}")
        if n == 0:
            return
        last = terminal if last is None else last
        values.update(action=action, reward=reward, terminal=terminal, last=last)
        if self.base_actions:
            values["base_action"] = base_action
        checked: dict[str, np.ndarray] = {}
        for k, (shape, dtype) in self._shapes.items():
            checked[k] = _check_array(k, values[k], lead + shape, dtype)
        act = checked["action"]
        if (np.abs(act) > 1.0 + 1e-6).any():
            raise ValueError(
                f"replay.add: action outside [-1, 1] (max |a| = {float(np.max(np.abs(act))):.4g})"
            )
        term, last_ = checked["terminal"], checked["last"]
        for k, v in (("terminal", term), ("last", last_)):
            if ((v != 0) & (v != 1)).any():
                raise ValueError(f"replay.add: {k} must be 0/1 or bool, got {np.unique(v).tolist()}")
        if (term > last_).any():
            raise ValueError(
                "replay.add: terminal=1 with last=0; an absorbing step is always an episode's last"
            )
        if n_lead == 0:  # fast path for the one-transition-per-env-step loop
            for k, v in checked.items():
                self._data[k][self._next] = v
        else:
            idx = (self._next + np.arange(n)) % self.capacity
            for k, v in checked.items():
                self._data[k][idx] = v
        self._next = int((self._next + n) % self.capacity)
        self._size = min(self._size + n, self.capacity)
        self._added += n

    def sample_indices(self, rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
        """Uniform indices with replacement into the stored transitions."""
        n = int(np.prod(shape))
        if n > self._size:
            raise ValueError(
                f"replay.sample: asked for {n} transitions but the buffer holds only {self._size}"
            )
        return rng.integers(0, self._size, size=shape)

    def gather(self, idx: np.ndarray) -> Transitions:
        """Rows `idx` (any shape) of every field; `next_action` is zeros (unknown for online data)."""
        d = self._data
        return Transitions(
            obs=self._obs_tree("obs", idx),
            action=d["action"][idx],
            reward=d["reward"][idx],
            next_obs=self._obs_tree("next_obs", idx),
            next_action=np.zeros(np.shape(idx) + (self.act_dim,), np.float32),
            terminal=d["terminal"][idx],
            last=d["last"][idx],
            base_action=d["base_action"][idx] if self.base_actions else None,
        )

    def sample(self, rng: np.random.Generator, n: int) -> Transitions:
        """`n` transitions drawn uniformly with replacement; leading axis [n]."""
        return self.gather(self.sample_indices(rng, int(n)))

    # -- checkpointing ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays that restore the buffer exactly (for resuming a run)."""
        out = {
            f"data/{k}": v[: self._size] if self._size < self.capacity else v for k, v in self._data.items()
        }
        out["meta"] = np.array([self.capacity, self._next, self._size, self._added], np.int64)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        capacity, nxt, size, added = (int(x) for x in state["meta"])
        if capacity != self.capacity:
            raise ValueError(
                f"ReplayBuffer.load_state_dict: saved capacity {capacity}, this buffer {self.capacity}"
            )
        for k, (shape, dtype) in self._shapes.items():
            arr = np.asarray(state[f"data/{k}"])
            if arr.shape != (size, *shape) or arr.dtype != dtype:
                raise ValueError(
                    f"ReplayBuffer.load_state_dict: data/{k} is {arr.shape} {arr.dtype}, "
                    f"expected {(size, *shape)} {dtype}"
                )
            self._data[k][:size] = arr
        self._next, self._size, self._added = nxt, size, added


def mixed_batch(
    demos: Transitions,
    buffer: ReplayBuffer,
    n_demo: int,
    n_online: int,
    rng: np.random.Generator,
    utd: int = 1,
) -> Transitions:
    """A [utd, n_demo + n_online] batch: in each row `n_demo` demo transitions first, then `n_online` online.

    The leading `utd` axis is always present (also for utd=1) so an agent can `lax.scan` over its UTD critic
    steps with one host-to-device transfer. Both parts are drawn uniformly with replacement; the demo rows
    come first so a learner can slice them (e.g. `batch.obs[:, :n_demo]`). Demo rows keep their
    `next_action`; online rows have zeros there. Demo indices are drawn before online indices, so a seed
    fixes the batch.
    """
    if utd <= 0:
        raise ValueError(f"mixed_batch: utd must be > 0, got {utd}")
    if n_demo < 0 or n_online < 0 or n_demo + n_online == 0:
        raise ValueError(f"mixed_batch: need n_demo, n_online >= 0 and not both 0; got {n_demo}, {n_online}")
    if n_demo > 0 and demos.size == 0:  # more rows than demo transitions is fine: rows are drawn with replacement
        raise ValueError("mixed_batch: n_demo > 0 but the demonstrations are empty")
    if n_online > buffer.size:
        raise ValueError(f"mixed_batch: n_online={n_online} but the replay buffer holds only {buffer.size}")
    demo_spec = jax.tree.map(lambda x: obs_lib.Spec(x.shape[1:], x.dtype), demos.obs)
    if jax.tree.structure(demo_spec, is_leaf=obs_lib.is_spec) != buffer._obs_def or any(
            a != b for a, b in zip(jax.tree.leaves(demo_spec, is_leaf=obs_lib.is_spec),
                                   jax.tree.leaves(buffer.obs_spec, is_leaf=obs_lib.is_spec))):
        raise ValueError(f"mixed_batch: demo observations are {demo_spec}, replay stores {buffer.obs_spec}")
    if demos.action.shape[1:] != (buffer.act_dim,):
        raise ValueError(f"mixed_batch: demo actions {demos.action.shape[1:]}, replay stores ({buffer.act_dim},)")
    if (demos.base_action is not None) != buffer.base_actions:
        raise ValueError("mixed_batch: the replay stores base actions but the demos have none (label them with "
                         "the base: csil_lite.base.compose.with_base_actions)" if buffer.base_actions else
                         "mixed_batch: the demos carry base actions but the replay stores none (base_actions=True)")
    demo_idx = rng.integers(0, demos.size, size=(utd, n_demo))
    online_idx = rng.integers(0, buffer.size, size=(utd, n_online))
    n = n_demo + n_online

    def rows(dem: np.ndarray, src: np.ndarray) -> np.ndarray:
        """Demo rows then online rows, one gather per source straight into the preallocated batch (indices are in
        range: "clip" only skips numpy's buffered bounds check)."""
        out = np.empty((utd, n, *src.shape[1:]), dtype=src.dtype)
        np.take(dem.astype(src.dtype, copy=False), demo_idx, axis=0, out=out[:, :n_demo], mode="clip")
        np.take(src, online_idx, axis=0, out=out[:, n_demo:], mode="clip")
        return out

    def obs_rows(name: str) -> Any:
        leaves = buffer._obs_def.flatten_up_to(getattr(demos, name))
        return buffer._obs_def.unflatten([rows(dem, buffer._data[name + k]) for dem, k in
                                          zip(leaves, buffer._obs_keys)])

    next_action = np.zeros((utd, n, buffer.act_dim), np.float32)  # unknown for online rows
    np.take(demos.next_action, demo_idx, axis=0, out=next_action[:, :n_demo], mode="clip")
    return Transitions(obs=obs_rows("obs"), action=rows(demos.action, buffer._data["action"]),
                       reward=rows(demos.reward, buffer._data["reward"]), next_obs=obs_rows("next_obs"),
                       next_action=next_action, terminal=rows(demos.terminal, buffer._data["terminal"]),
                       last=rows(demos.last, buffer._data["last"]),
                       base_action=(rows(demos.base_action, buffer._data["base_action"]) if buffer.base_actions
                                    else None))

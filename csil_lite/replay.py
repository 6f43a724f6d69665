"""Replay of online transitions and the fixed-ratio demo/online batches CSIL trains on.

Why a plain numpy ring buffer: uniform sampling with FIFO removal (the reference's Reverb table) needs nothing
more, and preallocated arrays make a batch one fancy-index per field. Observations keep their own dtype, so
uint8 images stay uint8 (4x smaller) until the encoder. Demonstrations are never inserted: `mixed_batch` draws
demo rows from the demo `Transitions` and online rows from the buffer, every batch in the same ratio.

`terminal` is 1 only for a true absorbing end (e.g. success in the toy tasks); a time-limit truncation is
stored with `terminal=0, last=1`, so the critic still bootstraps through it.

Observations are pytrees (`csil_lite.obs`): each leaf (a dict observation's key) is stored in its own array with
its own dtype, and batches come out as the same pytree.

Each frame is stored once. Observations live in a ring of *frames*; a transition holds two frame indices, its
observation's and its next observation's. When a transition continues the previous one (that one was not its
episode's last step and its next observation is this one's observation, compared exactly), the frame is shared,
so an episode of T steps costs T + 1 frames, not 2T: for two 84x84 cameras that halves the buffer. The frame ring
holds `frame_capacity` frames (default: 2 x capacity for vector observations, so no transition is ever lost
whatever the episode lengths; capacity + capacity / 10 + 2 with image leaves, enough for episodes of 10 or more
steps). A transition whose observation frame has been overwritten leaves the buffer (`size` counts only whole
transitions), so the buffer is always a contiguous window of the most recent transitions.

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
    """Fixed-capacity FIFO ring buffer of transitions with uniform sampling with replacement; each observation
    frame stored once (see the module docstring).

    Args:
      capacity: number of transitions kept; the oldest are overwritten first.
      obs_spec: one observation's layout: a shape (e.g. (obs_dim,) or (84, 84, 3)), or a pytree of
        `csil_lite.obs.Spec` (shape, dtype) per key, e.g. `Transitions.obs_spec` of the demonstrations. Every
        leaf is stored in its own array with its own dtype.
      act_dim: action dimension; actions must lie in [-1, 1] (checked on `add`).
      obs_dtype: storage dtype of a shape-only `obs_spec` (float32 for states, uint8 for images).
      base_actions: also store the base policy's action [act_dim] of every transition (`add(base_action=...)`
        then requires it); the base's raw proposal is kept (finite, not range-checked: the composition clips).
      frame_capacity: observation frames kept (default: 2 x capacity for vector observations; capacity +
        capacity // 10 + 2 when a leaf is a uint8 image [H, W, C]).
    """

    def __init__(self, capacity: int, obs_spec: Any, act_dim: int, obs_dtype: Any = np.float32, *,
                 base_actions: bool = False, frame_capacity: int | None = None):
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
        specs = jax.tree.leaves(obs_spec, is_leaf=obs_lib.is_spec)
        self._obs_def = jax.tree.structure(obs_spec, is_leaf=obs_lib.is_spec)
        # Frame arrays: "" for a single array; "_0", "_1", ... per leaf (in `obs_spec`'s leaf order).
        self._obs_keys = [""] if obs_lib.is_spec(obs_spec) else [f"_{i}" for i in range(len(specs))]
        self._frame_shapes = {k: (s.shape, s.dtype) for k, s in zip(self._obs_keys, specs)}
        if frame_capacity is None:
            images = any(len(s.shape) == 3 and s.dtype == np.uint8 for s in specs)
            frame_capacity = self.capacity + self.capacity // 10 + 2 if images else 2 * self.capacity
        if int(frame_capacity) < 2:
            raise ValueError(f"ReplayBuffer: frame_capacity must be >= 2, got {frame_capacity}")
        self.frame_capacity = int(frame_capacity)
        self._shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {
            "action": ((self.act_dim,), np.dtype(np.float32)),
            "reward": ((), np.dtype(np.float32)),
            "terminal": ((), np.dtype(np.float32)),
            "last": ((), np.dtype(np.float32)),
        }
        self.base_actions = bool(base_actions)
        if self.base_actions:
            self._shapes["base_action"] = ((self.act_dim,), np.dtype(np.float32))
        # absolute frame numbers (frame f lives in slot f % frame_capacity)
        self._index_fields = {"obs_frame": ((), np.dtype(np.int64)), "next_obs_frame": ((), np.dtype(np.int64))}
        self._data = {k: np.zeros((self.capacity, *s), d) for k, (s, d) in {**self._shapes,
                                                                            **self._index_fields}.items()}
        self._frames = {k: np.zeros((self.frame_capacity, *s), d) for k, (s, d) in self._frame_shapes.items()}
        self._added = 0  # total transitions ever added (for logging / "learning starts"); transition t: slot t % C
        self._start = 0  # absolute number of the oldest transition still whole
        self._frames_written = 0

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
    def memory_bytes(self) -> int:
        """Memory of the whole preallocated buffer: transition fields, frame indices and the frame ring."""
        return sum(v.nbytes for v in self._data.values()) + sum(v.nbytes for v in self._frames.values())

    @property
    def bytes_per_transition(self) -> int:
        """Memory per transition slot, the frame ring's share included (`memory_bytes / capacity`)."""
        return int(np.ceil(self.memory_bytes / self.capacity))

    @property
    def frame_bytes(self) -> int:
        """Memory of one observation frame (all leaves)."""
        return sum(int(np.prod(s)) * d.itemsize for s, d in self._frame_shapes.values())

    def describe(self) -> str:
        """One line on what the buffer holds and costs, e.g. for a run's log."""
        return (f"replay: {self.capacity:,} transitions, {self.frame_capacity:,} frames of "
                f"{self.frame_bytes:,} B; {self.bytes_per_transition:,} B per transition, "
                f"{self.memory_bytes / 2**20:,.1f} MiB in all")

    def __len__(self) -> int:
        return self._added - self._start

    @property
    def size(self) -> int:
        return self._added - self._start

    @property
    def total_added(self) -> int:
        return self._added

    def slots(self, i: np.ndarray) -> np.ndarray:
        """The ring slots of the `i`-th oldest stored transitions (0 <= i < size)."""
        if self.size == self.capacity:  # every slot holds a whole transition
            return i
        return (self._start + i) % self.capacity

    def _obs_leaves(self, name: str, obs: Any) -> list[Any]:
        try:
            return self._obs_def.flatten_up_to(obs)
        except (ValueError, TypeError) as e:
            raise ValueError(f"replay.add: {name} does not have the stored observation layout "
                             f"{self.obs_spec}: {e}") from None

    def _obs_tree(self, name: str, idx: Any) -> Any:
        frame = self._data[name + "_frame"][idx] % self.frame_capacity
        return self._obs_def.unflatten([self._frames[k][frame] for k in self._obs_keys])

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
        obs_l, next_l = self._obs_leaves("obs", obs), self._obs_leaves("next_obs", next_obs)
        first_shape = self._frame_shapes[self._obs_keys[0]][0]
        n_lead = np.ndim(obs_l[0]) - len(first_shape)
        if n_lead not in (0, 1):
            raise ValueError(f"replay.add: obs has shape {np.shape(obs_l[0])}, expected {first_shape} or "
                             f"(batch, *{first_shape})")
        lead: tuple[int, ...] = () if n_lead == 0 else (int(np.shape(obs_l[0])[0]),)
        n = 1 if n_lead == 0 else lead[0]
        if n > self.capacity:
            raise ValueError(f"replay.add: batch of {n} transitions exceeds capacity {self.capacity}")
        if n == 0:
            return
        last = terminal if last is None else last
        values = dict(action=action, reward=reward, terminal=terminal, last=last)
        if self.base_actions:
            values["base_action"] = base_action
        checked = {k: _check_array(k, values[k], lead + shape, dtype) for k, (shape, dtype) in self._shapes.items()}
        frames_in = {}
        for name, leaves in (("obs", obs_l), ("next_obs", next_l)):
            frames_in[name] = [_check_array(name + k, x, lead + self._frame_shapes[k][0], self._frame_shapes[k][1])
                               .reshape(n, *self._frame_shapes[k][0]) for k, x in zip(self._obs_keys, leaves)]
        act = checked["action"]
        if (np.abs(act) > 1.0 + 1e-6).any():
            raise ValueError(
                f"replay.add: action outside [-1, 1] (max |a| = {float(np.max(np.abs(act))):.4g})"
            )
        term, last_ = checked["terminal"].reshape(n), checked["last"].reshape(n)
        for k, v in (("terminal", term), ("last", last_)):
            if ((v != 0) & (v != 1)).any():
                raise ValueError(f"replay.add: {k} must be 0/1 or bool, got {np.unique(v).tolist()}")
        if (term > last_).any():
            raise ValueError(
                "replay.add: terminal=1 with last=0; an absorbing step is always an episode's last"
            )
        obs_idx, next_idx, new = self._frame_numbers(frames_in["obs"], frames_in["next_obs"], last_)
        n_frames = n + int(new.sum())
        for k, o, x in zip(self._obs_keys, frames_in["obs"], frames_in["next_obs"]):
            self._frames[k][obs_idx[new] % self.frame_capacity] = o[new]
            self._frames[k][next_idx % self.frame_capacity] = x
        slots = (self._added + np.arange(n)) % self.capacity
        checked.update(obs_frame=obs_idx, next_obs_frame=next_idx)
        for k, v in checked.items():
            self._data[k][slots] = v.reshape(n, *self._data[k].shape[1:])
        self._added += n
        self._frames_written += n_frames
        self._start = max(self._start, self._added - self.capacity)
        oldest_frame = self._frames_written - self.frame_capacity
        while self._start < self._added and self._data["obs_frame"][self._start % self.capacity] < oldest_frame:
            self._start += 1  # its observation's frame was overwritten

    def _frame_numbers(self, obs: list[np.ndarray], nxt: list[np.ndarray],
                       last: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(observation frame, next-observation frame, whether the observation is a new frame) of each of `n` new
        rows: a row whose
        observation is the previous row's next observation (and that row was not its episode's last) shares that
        frame; every other row writes its observation as a new frame; every row writes its next observation."""
        n = last.shape[0]
        cont = np.zeros(n, bool)
        prev_next = np.empty(n, np.int64)
        if self.size > 0:
            newest = (self._added - 1) % self.capacity
            prev_next[0] = self._data["next_obs_frame"][newest]
            if self._data["last"][newest] == 0:
                slot = prev_next[0] % self.frame_capacity
                cont[0] = all(np.array_equal(o[0], self._frames[k][slot]) for k, o in zip(self._obs_keys, obs))
        if n > 1:
            same = last[:-1] == 0
            for o, x in zip(obs, nxt):
                same &= (o[1:] == x[:-1]).reshape(n - 1, -1).all(axis=1)
            cont[1:] = same
        per_row = np.where(cont, 1, 2)
        n_frames = int(per_row.sum())
        if n_frames > self.frame_capacity:
            raise ValueError(f"replay.add: the batch needs {n_frames} frames, the frame ring holds "
                             f"{self.frame_capacity}; add fewer transitions at once")
        next_idx = self._frames_written + np.cumsum(per_row) - 1
        prev_next[1:] = next_idx[:-1]
        obs_idx = np.where(cont, prev_next, next_idx - 1)
        return obs_idx, next_idx, ~cont

    def sample_indices(self, rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
        """Uniform slots, with replacement, of the stored transitions."""
        n = int(np.prod(shape))
        if n > self.size:
            raise ValueError(
                f"replay.sample: asked for {n} transitions but the buffer holds only {self.size}"
            )
        return self.slots(rng.integers(0, self.size, size=shape))

    def gather(self, idx: np.ndarray) -> Transitions:
        """Slots `idx` (any shape) of every field; `next_action` is zeros (unknown for online data)."""
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
    def checkpoint_meta(self) -> dict[str, int]:
        """What `restore_target` needs to know about a saved `state_dict` (kept in the checkpoint's meta)."""
        return {"replay_size": self.size, "replay_rows": min(self._added, self.capacity),
                "replay_frames": min(self._frames_written, self.frame_capacity)}

    def restore_target(self, meta: dict[str, int]) -> dict[str, np.ndarray]:
        """Zero arrays shaped like the `state_dict` a buffer with `checkpoint_meta()` == `meta` saved (a restore
        target); a checkpoint from before frames were shared (meta without 'replay_frames') has its old layout."""
        if "replay_frames" not in meta:
            size = int(meta["replay_size"])
            old = {**{f"data/{p}{k}": np.zeros((size, *s), d) for p in ("obs", "next_obs")
                      for k, (s, d) in self._frame_shapes.items()},
                   **{f"data/{k}": np.zeros((size, *s), d) for k, (s, d) in self._shapes.items()}}
            return {**old, "meta": np.zeros(4, np.int64)}
        rows, frames = int(meta["replay_rows"]), int(meta["replay_frames"])
        return {**{f"data/{k}": np.zeros((rows, *s), d) for k, (s, d) in {**self._shapes,
                                                                           **self._index_fields}.items()},
                **{f"frames/obs{k}": np.zeros((frames, *s), d) for k, (s, d) in self._frame_shapes.items()},
                "meta": np.zeros(5, np.int64)}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays that restore the buffer exactly (for resuming a run)."""
        rows, frames = min(self._added, self.capacity), min(self._frames_written, self.frame_capacity)
        out = {f"data/{k}": v[:rows] for k, v in self._data.items()}
        out.update({f"frames/obs{k}": v[:frames] for k, v in self._frames.items()})
        out["meta"] = np.array([self.capacity, self.frame_capacity, self._added, self._start,
                                self._frames_written], np.int64)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        meta = [int(x) for x in state["meta"]]
        if meta[0] != self.capacity:
            raise ValueError(f"ReplayBuffer.load_state_dict: saved capacity {meta[0]}, this buffer {self.capacity}")
        if len(meta) == 4:  # saved before frames were shared: obs and next_obs per transition
            self._load_unshared(state, *meta[1:])
            return
        _, frame_capacity, added, start, written = meta
        if frame_capacity != self.frame_capacity:
            raise ValueError(f"ReplayBuffer.load_state_dict: saved frame capacity {frame_capacity}, this buffer "
                             f"{self.frame_capacity}")
        rows, frames = min(added, self.capacity), min(written, self.frame_capacity)
        expect = {**{f"data/{k}": ((rows, *s), d) for k, (s, d) in {**self._shapes, **self._index_fields}.items()},
                  **{f"frames/obs{k}": ((frames, *s), d) for k, (s, d) in self._frame_shapes.items()}}
        for key, (shape, dtype) in expect.items():
            arr = np.asarray(state[key])
            if arr.shape != shape or arr.dtype != dtype:
                raise ValueError(f"ReplayBuffer.load_state_dict: {key} is {arr.shape} {arr.dtype}, "
                                 f"expected {shape} {dtype}")
            group, name = key.split("/")
            target = self._data[name] if group == "data" else self._frames[name[len("obs"):]]
            target[: shape[0]] = arr
        self._added, self._start, self._frames_written = added, start, written

    def _load_unshared(self, state: dict[str, np.ndarray], nxt: int, size: int, added: int) -> None:
        """A state_dict of the old layout: its transitions re-added oldest first, into the slots they had."""
        order = np.arange(size) if size < self.capacity else (nxt + np.arange(size)) % self.capacity
        try:
            tree = {p: self._obs_def.unflatten([np.asarray(state[f"data/{p}{k}"])[order] for k in self._obs_keys])
                    for p in ("obs", "next_obs")}
            rows = {k: np.asarray(state[f"data/{k}"])[order] for k in self._shapes}
        except KeyError as e:
            raise ValueError(f"ReplayBuffer.load_state_dict: {e.args[0]} missing") from None
        self._added = self._start = added - size
        self._frames_written = 0
        if size:
            self.add(tree["obs"], rows["action"], rows["reward"], tree["next_obs"], rows["terminal"], rows["last"],
                     base_action=rows.get("base_action"))


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
    online_idx = buffer.slots(rng.integers(0, buffer.size, size=(utd, n_online)))
    n = n_demo + n_online

    def rows(dem: np.ndarray, src: np.ndarray) -> np.ndarray:
        """Demo rows then online rows, one gather per source straight into the preallocated batch (indices are in
        range: "clip" only skips numpy's buffered bounds check)."""
        out = np.empty((utd, n, *src.shape[1:]), dtype=src.dtype)
        np.take(dem.astype(src.dtype, copy=False), demo_idx, axis=0, out=out[:, :n_demo], mode="clip")
        np.take(src, online_idx, axis=0, out=out[:, n_demo:], mode="clip")
        return out

    def obs_rows(name: str) -> Any:
        """Demo rows, then the online rows' frames (one gather per leaf through the frame indices)."""
        leaves = buffer._obs_def.flatten_up_to(getattr(demos, name))
        frame_idx = buffer._data[name + "_frame"][online_idx] % buffer.frame_capacity
        out = []
        for dem, k in zip(leaves, buffer._obs_keys):
            src = buffer._frames[k]
            arr = np.empty((utd, n, *src.shape[1:]), dtype=src.dtype)
            np.take(dem.astype(src.dtype, copy=False), demo_idx, axis=0, out=arr[:, :n_demo], mode="clip")
            np.take(src, frame_idx, axis=0, out=arr[:, n_demo:], mode="clip")
            out.append(arr)
        return buffer._obs_def.unflatten(out)

    next_action = np.zeros((utd, n, buffer.act_dim), np.float32)  # unknown for online rows
    np.take(demos.next_action, demo_idx, axis=0, out=next_action[:, :n_demo], mode="clip")
    return Transitions(obs=obs_rows("obs"), action=rows(demos.action, buffer._data["action"]),
                       reward=rows(demos.reward, buffer._data["reward"]), next_obs=obs_rows("next_obs"),
                       next_action=next_action, terminal=rows(demos.terminal, buffer._data["terminal"]),
                       last=rows(demos.last, buffer._data["last"]),
                       base_action=(rows(demos.base_action, buffer._data["base_action"]) if buffer.base_actions
                                    else None))

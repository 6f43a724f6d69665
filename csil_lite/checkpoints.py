"""Checkpoints through orbax's `CheckpointManager`: each save is written aside and renamed into place when
complete (atomic finalisation), and the newest `keep` are kept, so a kill at any moment leaves the previous
checkpoint whole (the half-written one is cleaned away the next time the directory is opened). A checkpoint is a pytree of arrays (restored into the structure of a `like` pytree, or as
plain dicts without one) plus a small JSON dict.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

# orbax logs every save and restore at INFO through absl; a training bar is enough.
logging.getLogger("absl").setLevel(logging.WARNING)


EMPTY = "_empty_arrays"  # meta key: the zero-size arrays of a tree (orbax saves none), by path -> (shape, dtype)


def _fill_empty(tree: Any) -> tuple[Any, dict]:
    """`tree` with every zero-size array replaced by a scalar of its dtype, and {path: (shape, dtype)} of them."""
    empty: dict[str, tuple] = {}

    def fill(path, x):
        if getattr(x, "size", 1) == 0:
            empty[jax.tree_util.keystr(path)] = (list(x.shape), np.dtype(x.dtype).str)
            return np.zeros((), x.dtype)
        return x

    return jax.tree_util.tree_map_with_path(fill, tree), empty


def write_atomic(path: Path, text: str) -> None:
    """Write a small text file aside and rename it into place: a reader (or a resume after a kill) sees the old
    contents or the new, never a truncated file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Checkpoints:
    """The numbered checkpoints of one directory (numbers: the step each was taken at)."""

    def __init__(self, directory: str | Path, keep: int = 2):
        self.directory = Path(directory).absolute()
        self._keep = keep
        self._opened: ocp.CheckpointManager | None = None

    @property
    def _manager(self) -> ocp.CheckpointManager:
        """The manager, made on first use (so that asking a directory that does not exist creates nothing)."""
        if self._opened is None:
            self._opened = ocp.CheckpointManager(
                self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=self._keep, create=True,
                                                                     enable_async_checkpointing=False,
                                                                     cleanup_tmp_directories=True))
        return self._opened

    def latest(self) -> int | None:
        """The newest complete checkpoint's step (None: none yet)."""
        return self._manager.latest_step() if self.directory.exists() else None

    def save(self, step: int, tree: Any, meta: dict | None = None) -> None:
        """Save `tree` (arrays) and `meta` (JSON) as checkpoint `step`; a step already saved is kept as it is."""
        if step in self._manager.all_steps():
            return
        tree, empty = _fill_empty(tree)
        self._manager.save(step, args=ocp.args.Composite(tree=ocp.args.StandardSave(tree),
                                                         meta=ocp.args.JsonSave({**(meta or {}), EMPTY: empty})))
        self._manager.wait_until_finished()

    def restore(self, like: Any = None, step: int | None = None, *, meta_only: bool = False) -> tuple[Any, dict]:
        """(tree, meta) of checkpoint `step` (default: the newest); `like` gives the tree's structure, dtypes and
        shapes (e.g. a freshly initialised state); without it, nested dicts and lists come back. `meta_only`:
        (None, meta), reading no arrays."""
        step = self.latest() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{self.directory}: no complete checkpoint")
        if meta_only:
            out = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            meta = dict(out.meta)
            meta.pop(EMPTY, None)
            return None, meta
        target = None if like is None else jax.tree.map(ocp.utils.to_shape_dtype_struct, _fill_empty(like)[0])
        out = self._manager.restore(step, args=ocp.args.Composite(tree=ocp.args.StandardRestore(target),
                                                                  meta=ocp.args.JsonRestore()))
        meta = dict(out.meta)
        empty = meta.pop(EMPTY, {})
        tree = jax.tree_util.tree_map_with_path(
            lambda path, x: np.zeros(*empty[jax.tree_util.keystr(path)]) if jax.tree_util.keystr(path) in empty
            else x, out.tree)
        return tree, meta

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()

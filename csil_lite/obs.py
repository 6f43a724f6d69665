"""Observations as pytrees: a state vector is one array, a robosuite observation a dict of named arrays.

Every array of an observation batch shares the leading (batch) axes; each keeps its own dtype (uint8 images stay
uint8 until an encoder, `nets.encoders`, turns the pytree into features). Code that moves observations around
(replay, batches, BC minibatches, the joint [s; s'] pass) uses these helpers, so it never asks what kind of
observation it holds.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import numpy as np

Obs = Any  # an array, or a (nested) dict of arrays with common leading axes


class Spec(tuple):
    """(shape, dtype) of one observation leaf without its batch axes; a tuple so it is a pytree leaf container
    nobody maps into by accident (`is_spec`)."""

    def __new__(cls, shape: Sequence[int], dtype: Any) -> "Spec":
        return super().__new__(cls, (tuple(int(d) for d in shape), np.dtype(dtype)))

    @property
    def shape(self) -> tuple[int, ...]:
        return self[0]

    @property
    def dtype(self) -> np.dtype:
        return self[1]

    def __repr__(self) -> str:
        return f"{self.shape} {self.dtype}"


def is_spec(x: Any) -> bool:
    return isinstance(x, Spec)


def spec_of(batch: Obs, batch_ndim: int = 1) -> Any:
    """The per-leaf `Spec` of an observation batch (its leading `batch_ndim` axes dropped)."""
    return jax.tree.map(lambda x: Spec(np.shape(x)[batch_ndim:], getattr(x, "dtype", None) or np.asarray(x).dtype),
                        batch)


def leading(obs: Obs, spec: Any) -> tuple[int, ...]:
    """The batch axes of `obs` given its per-leaf spec (() for a single observation); all leaves must agree."""
    leads = {tuple(np.shape(x)[: np.ndim(x) - len(s.shape)]) for x, s in
             zip(jax.tree.leaves(obs), jax.tree.leaves(spec, is_leaf=is_spec))}
    if len(leads) != 1:
        raise ValueError(f"observation leaves disagree on their batch axes: {sorted(leads)}")
    return leads.pop()


def size(obs: Obs) -> int:
    """Length of the first axis (every leaf has the same)."""
    return int(np.shape(jax.tree.leaves(obs)[0])[0])


def take(obs: Obs, idx: Any) -> Obs:
    """Rows `idx` of every leaf."""
    return jax.tree.map(lambda x: x[idx], obs)


def concat(parts: Sequence[Obs], axis: int = 0, xp: Any = None) -> Obs:
    """Leaf-wise concatenation along `axis` (jax.numpy by default, numpy with `xp=np`)."""
    if xp is None:
        import jax.numpy as xp  # noqa: PLC0415
    return jax.tree.map(lambda *xs: xp.concatenate(xs, axis=axis), *parts)


def stack(items: Sequence[Obs]) -> Obs:
    """Leaf-wise `np.stack` of single observations into a batch."""
    return jax.tree.map(lambda *xs: np.stack(xs), *items)


def has_images(obs: Obs, batch_ndim: int = 1) -> bool:
    """Whether any leaf is an image: uint8 with three axes (H, W, C) after the `batch_ndim` batch axes."""
    return any(np.ndim(x) == batch_ndim + 3 and np.dtype(getattr(x, "dtype", np.float32)) == np.uint8
               for x in jax.tree.leaves(obs))


def unroll_loops(obs: Obs, batch_ndim: int = 1) -> bool:
    """Whether repeated training steps on these observations should run as a Python loop of jitted steps rather
    than inside `lax.scan`: yes for images on a CPU, where XLA runs the encoders' convolutions inside a loop about
    27x slower (`pretrain.bc.scan_in_chunks`)."""
    return has_images(obs, batch_ndim) and jax.default_backend() == "cpu"


def shapes(obs: Obs) -> Any:
    """The leaves' shapes, for messages."""
    return jax.tree.map(np.shape, obs)


def flatten_obs(obs: Mapping[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
    """Concatenate named observation arrays in the declared key order along the last axis, as float32.

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

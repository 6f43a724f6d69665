"""Read, write and check demonstration files in robomimic's HDF5 layout, with h5py only.

Why our own reader: robomimic itself pulls in torch/torchvision (and its file utilities fail to import against
the CPU torch wheel), while the format is small. Files written here load in robomimic, and downloaded
robomimic files (e.g. ``square/ph/low_dim_v15.hdf5``) load here. The layout::

    data/                     attrs: total (int, sum of num_samples), env_args (JSON string, see below)
      demo_<i>/               attrs: num_samples (int), model_file (MJCF xml string, optional)
        obs/<key>             [T, ...]   low-dim float, or uint8 images [T, H, W, 3] named *_image
        next_obs/<key>        [T, ...]   the same keys, one step later
        actions               [T, A]     in [-1, 1]
        rewards               [T]        reward after the transition
        dones                 [T]        0/1; robomimic's done_mode 2 sets 1 at a success state and at the end
        states                [T, S]     flattened MuJoCo states (optional: not needed for low-dim learning)
    mask/<filter_key>         1-D array of byte strings naming demos, e.g. mask/train, mask/valid

``env_args`` is robomimic's environment record: ``env_name``, ``env_version``, ``type`` (1 = robosuite) and
``env_kwargs``, which robomimic passes unchanged to ``robosuite.make(env_name, **env_kwargs)``, so it may
hold only keywords robosuite accepts. csil_lite's own facts (task name, placement preset) go under the
top-level key ``"csil_lite"``, which robomimic ignores. Files written before that change carried them inside
``env_kwargs`` (``csil_lite_task``, ``placement``); the reader moves them to ``"csil_lite"`` with a
`LegacyFileWarning`, and the writer refuses them there.

Demo names: robomimic orders demos by the integer after ``demo_`` (not by string order), and its own files
start at ``demo_0`` (robosuite's raw collection files start at ``demo_1``). We read any ``demo_<int>``
numbering in integer order and write ``demo_0 ... demo_{N-1}``.

Leniency, matching what robomimic's loaders tolerate: ``states`` and ``model_file`` may be missing, ``mask``
may be missing (then no filter keys), ``data.attrs["total"]`` may be missing (checked when present), extra
demo attributes (``ep_meta``, ``camera_info``) and extra groups (``action_dict``, ``datagen_info``) are
ignored. A missing ``next_obs`` group is an error by default (robomimic's default config also loads
next_obs); ``derive_next_obs=True`` rebuilds it (see `read_dataset`). Everything else that is wrong raises
`DatasetError` naming the file, the demo and the key.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from csil_lite.data.transitions import Transitions, episodes_to_transitions, flatten_obs
from csil_lite.errors import UserError

__all__ = [
    "ACTION_TOLERANCE",
    "CSIL_LITE_KEY",
    "DatasetError",
    "Episode",
    "LegacyFileWarning",
    "RobomimicDataset",
    "load_transitions",
    "read_dataset",
    "validate",
    "write_dataset",
]

# Actions may exceed [-1, 1] by this much (float32 round-off of clipped actions); anything more is an error.
ACTION_TOLERANCE = 1e-5

_DEMO_RE = re.compile(r"^demo_(\d+)$")
# env_args key for csil_lite's own facts; robomimic reads only env_name, type, env_version and env_kwargs.
CSIL_LITE_KEY = "csil_lite"
# Keys older csil_lite files put into env_kwargs (robosuite.make rejects them) -> name under CSIL_LITE_KEY.
_LEGACY_ENV_KWARGS = {"csil_lite_task": "task", "placement": "placement"}
_REQUIRED = ("obs", "actions", "rewards", "dones")

PathLike = str | os.PathLike


class DatasetError(UserError):
    """A demonstration file (or in-memory episode) that does not follow the robomimic layout.

    A `UserError` (hence a `ValueError`): the command line reports it in one line naming file, demo and key.
    """


class LegacyFileWarning(UserWarning):
    """A file in an older csil_lite layout was read and converted in memory (the file itself is unchanged)."""


@dataclass
class Episode:
    """One ``data/demo_i`` group."""

    obs: dict[str, np.ndarray]  # key -> [T, ...] (images uint8 [T, H, W, 3])
    next_obs: dict[str, np.ndarray]
    actions: np.ndarray  # [T, A] float, in [-1, 1]
    rewards: np.ndarray  # [T]
    dones: np.ndarray  # [T]
    states: np.ndarray | None = None  # [T, S] flattened MuJoCo states
    model_file: str | None = None  # MJCF xml string (demo attribute "model_file")

    @property
    def num_samples(self) -> int:
        return int(np.shape(self.actions)[0])


@dataclass
class RobomimicDataset:
    """What `read_dataset` returns. `demo_names[i]` is the group name of `episodes[i]`;
    `masks` holds every filter key of the file (e.g. ``train``, ``valid``), whichever episodes were loaded."""

    path: str
    episodes: list[Episode]
    env_args: dict[str, Any]
    masks: dict[str, list[str]] = field(default_factory=dict)
    demo_names: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(ep.num_samples for ep in self.episodes)


# ----------------------------------------------------------------------------------------------- checks


def _is_image_key(key: str) -> bool:
    return key.endswith("_image")


def _check_layout(
    where: str,
    obs: Mapping[str, Any],
    next_obs: Mapping[str, Any] | None,
    actions: Any,
    rewards: Any,
    dones: Any,
    states: Any | None,
    num_samples: int | None,
) -> int:
    """Shape/dtype checks on anything with `.shape` and `.dtype` (numpy arrays or h5py datasets, so a file's
    layout is checked without reading its data). Returns the episode length T."""
    a_shape = tuple(actions.shape)
    if len(a_shape) != 2 or a_shape[1] < 1:
        raise DatasetError(f"{where}/actions: shape {a_shape}, expected [T, action_dim]")
    if not np.issubdtype(actions.dtype, np.floating):
        raise DatasetError(f"{where}/actions: dtype {actions.dtype}, expected a float array")
    t = a_shape[0]
    if t == 0:
        raise DatasetError(f"{where}: empty demo (actions has shape {a_shape}, expected at least one step)")
    if num_samples is not None and num_samples != t:
        raise DatasetError(
            f"{where}: attribute num_samples={num_samples} but actions has {t} steps {a_shape}"
        )
    for name, arr in (("rewards", rewards), ("dones", dones)):
        if tuple(arr.shape) != (t,):
            raise DatasetError(
                f"{where}/{name}: shape {tuple(arr.shape)}, expected ({t},) to match actions {a_shape}"
            )
    if states is not None:
        s_shape = tuple(states.shape)
        if len(s_shape) != 2 or s_shape[0] != t:
            raise DatasetError(
                f"{where}/states: shape {s_shape}, expected [{t}, state_dim] to match actions {a_shape}"
            )
    if len(obs) == 0:
        raise DatasetError(f"{where}/obs: no observation keys")
    for key, arr in obs.items():
        shape = tuple(arr.shape)
        if len(shape) < 1 or shape[0] != t:
            raise DatasetError(
                f"{where}/obs/{key}: shape {shape}, expected {t} steps to match actions {a_shape}"
            )
        if _is_image_key(key) and (len(shape) != 4 or arr.dtype != np.uint8):
            raise DatasetError(
                f"{where}/obs/{key}: image key with shape {shape} dtype {arr.dtype}, "
                "expected uint8 [T, H, W, C]"
            )
        if next_obs is not None:
            if key not in next_obs:
                raise DatasetError(f"{where}/next_obs: key '{key}' missing; present: {sorted(next_obs)}")
            nxt = next_obs[key]
            if tuple(nxt.shape) != shape or nxt.dtype != arr.dtype:
                raise DatasetError(
                    f"{where}/next_obs/{key}: shape {tuple(nxt.shape)} dtype {nxt.dtype}, "
                    f"expected shape {shape} "
                    f"dtype {arr.dtype} like obs/{key}"
                )
    return t


def _check_finite(where: str, arr: np.ndarray) -> None:
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DatasetError(
                f"{where}: non-finite value {arr[idx]} at index {idx} (NaN/inf are not allowed)"
            )


def _check_values(
    where: str,
    obs: Mapping[str, np.ndarray],
    next_obs: Mapping[str, np.ndarray],
    actions: np.ndarray,
    rewards: np.ndarray,
    dones: np.ndarray,
    states: np.ndarray | None,
) -> None:
    """Value checks on loaded arrays: finite floats, actions in [-1, 1], dones in {0, 1}."""
    for key, arr in obs.items():
        _check_finite(f"{where}/obs/{key}", arr)
    for key, arr in next_obs.items():
        _check_finite(f"{where}/next_obs/{key}", arr)
    for name, arr in (("actions", actions), ("rewards", rewards), ("dones", dones), ("states", states)):
        if arr is not None:
            _check_finite(f"{where}/{name}", arr)
    over = np.abs(actions) > 1.0 + ACTION_TOLERANCE
    if over.any():
        i, j = (int(v) for v in np.argwhere(over)[0])
        raise DatasetError(
            f"{where}/actions: value {actions[i, j]} at step {i}, dim {j} is outside [-1, 1] "
            f"(tolerance {ACTION_TOLERANCE}); robomimic actions must be normalised, nothing is clipped here"
        )
    d = np.asarray(dones)
    bad = (d != 0) & (d != 1)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise DatasetError(f"{where}/dones: value {d[i]} at step {i}, expected 0 or 1")


class _Consistency:
    """Cross-demo checks: one action dim and one per-step shape per observation key for the whole file."""

    def __init__(self) -> None:
        self.action_dim: tuple[str, int] | None = None
        self.obs_shapes: dict[str, tuple[str, tuple[int, ...]]] = {}
        self.obs_keys: tuple[str, list[str]] | None = None

    def check(self, where: str, actions: Any, obs: Mapping[str, Any]) -> None:
        keys = sorted(obs)
        if self.obs_keys is None:
            self.obs_keys = (where, keys)
        elif self.obs_keys[1] != keys:
            ref_where, ref = self.obs_keys
            raise DatasetError(
                f"{where}/obs: keys {keys} differ from {ref_where}'s {ref} "
                f"(missing {sorted(set(ref) - set(keys))}, extra {sorted(set(keys) - set(ref))})"
            )
        adim = int(actions.shape[1])
        if self.action_dim is None:
            self.action_dim = (where, adim)
        elif self.action_dim[1] != adim:
            raise DatasetError(
                f"{where}/actions: action dim {adim}, but {self.action_dim[0]} has {self.action_dim[1]}"
            )
        for key, arr in obs.items():
            shape = tuple(int(s) for s in arr.shape[1:])
            if key not in self.obs_shapes:
                self.obs_shapes[key] = (where, shape)
            elif self.obs_shapes[key][1] != shape:
                ref_where, ref = self.obs_shapes[key]
                raise DatasetError(f"{where}/obs/{key}: per-step shape {shape}, but {ref_where} has {ref}")


# ------------------------------------------------------------------------------------------------ reading


def _as_str(value: Any) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _as_str(value.reshape(()).item())
    return str(value)


def _demo_names(f: h5py.File, path: str) -> list[str]:
    """Demo group names under ``data``, in robomimic's integer order."""
    if "data" not in f or not isinstance(f["data"], h5py.Group):
        raise DatasetError(f"{path}: no 'data' group; top-level keys: {sorted(f.keys())}")
    names = list(f["data"].keys())
    bad = [n for n in names if not _DEMO_RE.match(n) or not isinstance(f["data"][n], h5py.Group)]
    if bad:
        raise DatasetError(f"{path}: data/ holds {bad}, expected only groups named demo_<int>")
    if not names:
        raise DatasetError(f"{path}: data/ holds no demos")
    return sorted(names, key=lambda n: int(n[5:]))


def _env_args(f: h5py.File, path: str) -> dict[str, Any]:
    if "env_args" not in f["data"].attrs:
        raise DatasetError(
            f"{path}: data attribute 'env_args' missing (a JSON string describing the environment)"
        )
    raw = _as_str(f["data"].attrs["env_args"])
    try:
        env_args = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DatasetError(
            f"{path}: data attribute 'env_args' is not valid JSON ({e}): {raw[:80]!r}"
        ) from None
    if not isinstance(env_args, dict):
        raise DatasetError(
            f"{path}: data attribute 'env_args' is JSON {type(env_args).__name__}, expected an object"
        )
    return _migrate_env_args(env_args, path)


def _migrate_env_args(env_args: dict[str, Any], path: str) -> dict[str, Any]:
    """Move csil_lite's keys out of ``env_kwargs`` (files written before they moved) into ``"csil_lite"``."""
    kwargs = env_args.get("env_kwargs")
    if not isinstance(kwargs, dict):
        return env_args
    legacy = [k for k in _LEGACY_ENV_KWARGS if k in kwargs]
    if not legacy:
        return env_args
    env_args = dict(env_args)
    kwargs = dict(kwargs)
    ours = dict(env_args.get(CSIL_LITE_KEY) or {})
    for key in legacy:
        ours.setdefault(_LEGACY_ENV_KWARGS[key], kwargs.pop(key))
    env_args["env_kwargs"] = kwargs
    env_args[CSIL_LITE_KEY] = ours
    warnings.warn(
        f"{path}: env_args['env_kwargs'] holds {legacy}, which robosuite.make does not accept (a file "
        f"from an older csil_lite); read as env_args['{CSIL_LITE_KEY}'] = {ours}. robomimic cannot rebuild "
        "this file's environment until it is rewritten (ds = read_dataset(path); "
        "write_dataset(new_path, ds.episodes, ds.env_args))",
        LegacyFileWarning,
        stacklevel=5,
    )
    return env_args


def _masks(f: h5py.File, path: str, demo_names: Sequence[str]) -> dict[str, list[str]]:
    if "mask" not in f:
        return {}
    known = set(demo_names)
    masks: dict[str, list[str]] = {}
    for key, ds in f["mask"].items():
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 1:
            raise DatasetError(f"{path}: mask/{key} should be a 1-D array of demo names")
        names = [_as_str(v) for v in ds[()]]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise DatasetError(f"{path}: mask/{key} names demos that do not exist: {unknown[:5]}")
        masks[key] = sorted(names, key=lambda n: int(n[5:]))
    return masks


def _num_samples(grp: h5py.Group, where: str) -> int:
    if "num_samples" not in grp.attrs:
        raise DatasetError(f"{where}: attribute 'num_samples' missing")
    v = np.asarray(grp.attrs["num_samples"])
    if v.size != 1 or not np.issubdtype(v.dtype, np.integer):
        raise DatasetError(f"{where}: attribute num_samples={v!r}, expected one integer")
    return int(v.reshape(()))


def _demo_datasets(
    grp: h5py.Group, where: str, obs_keys: Sequence[str] | None, derive_next_obs: bool
) -> tuple[dict[str, h5py.Dataset], dict[str, h5py.Dataset] | None, dict[str, h5py.Dataset]]:
    """The h5py datasets of one demo (every observation key, so layout checks cover the whole file), after
    checking that the groups and the requested keys exist."""
    for name in _REQUIRED:
        if name not in grp:
            raise DatasetError(f"{where}: '{name}' missing; present: {sorted(grp.keys())}")
    if not isinstance(grp["obs"], h5py.Group):
        raise DatasetError(f"{where}/obs: expected a group of per-key arrays")
    present = sorted(grp["obs"].keys())
    missing = [k for k in (obs_keys or ()) if k not in grp["obs"]]
    if missing:
        raise DatasetError(f"{where}/obs: keys {missing} missing; present: {present}")
    obs = {k: grp["obs"][k] for k in present}
    nxt = None
    if "next_obs" in grp:
        nxt = {k: grp["next_obs"][k] for k in present if k in grp["next_obs"]}
        extra = sorted(set(grp["next_obs"].keys()) - set(present))
        if extra:
            raise DatasetError(f"{where}/next_obs: keys {extra} have no counterpart in obs/")
    elif not derive_next_obs:
        raise DatasetError(
            f"{where}: 'next_obs' group missing "
            "(pass derive_next_obs=True to rebuild it from obs shifted by one step)"
        )
    for k, ds in [*obs.items(), *(nxt or {}).items()]:
        if not isinstance(ds, h5py.Dataset):
            raise DatasetError(f"{where}: obs/next_obs entry '{k}' is a group, expected an array")
    other = {n: grp[n] for n in ("actions", "rewards", "dones", "states") if n in grp}
    for n, ds in other.items():
        if not isinstance(ds, h5py.Dataset):
            raise DatasetError(f"{where}/{n}: expected an array, found a group")
    return obs, nxt, other


def _derive_next(obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """next_obs[t] = obs[t+1]; the final next observation was never recorded, so the last one repeats
    obs[T-1]."""
    return {k: np.concatenate([v[1:], v[-1:]], axis=0) for k, v in obs.items()}


def _read_file(
    path: PathLike,
    obs_keys: Sequence[str] | None,
    filter_key: str | None,
    max_episodes: int | None,
    derive_next_obs: bool,
    keep: bool,
) -> RobomimicDataset:
    spath = str(path)
    if not Path(spath).is_file():
        raise DatasetError(f"{spath}: no such file")
    try:
        f = h5py.File(spath, "r")
    except OSError as e:
        raise DatasetError(f"{spath}: not a readable HDF5 file ({e})") from None
    with f:
        names = _demo_names(f, spath)
        env_args = _env_args(f, spath)
        masks = _masks(f, spath, names)
        if filter_key is not None:
            if filter_key not in masks:
                raise DatasetError(f"{spath}: filter key mask/{filter_key} missing; present: {sorted(masks)}")
            chosen = masks[filter_key]
        else:
            chosen = names
        if max_episodes is not None:
            if max_episodes < 1:
                raise DatasetError(f"{spath}: max_episodes={max_episodes}, expected at least 1")
            chosen = chosen[:max_episodes]

        # Layout of every demo (metadata only), so cross-demo and `total` checks cover the whole file.
        consistency = _Consistency()
        total = 0
        layouts = {}
        for name in names:
            where = f"{spath}: data/{name}"
            grp = f["data"][name]
            obs, nxt, other = _demo_datasets(grp, where, obs_keys, derive_next_obs)
            t = _check_layout(
                where,
                obs,
                nxt,
                other["actions"],
                other["rewards"],
                other["dones"],
                other.get("states"),
                _num_samples(grp, where),
            )
            consistency.check(where, other["actions"], obs)
            total += t
            layouts[name] = (obs, nxt, other)
        if "total" in f["data"].attrs:
            declared = int(np.asarray(f["data"].attrs["total"]).reshape(()))
            if declared != total:
                raise DatasetError(
                    f"{spath}: data attribute total={declared} but the demos hold {total} samples"
                )

        episodes: list[Episode] = []
        for name in chosen if keep else names:
            where = f"{spath}: data/{name}"
            obs_ds, nxt_ds, other = layouts[name]
            load = list(obs_keys) if obs_keys is not None else list(obs_ds)
            obs = {k: obs_ds[k][()] for k in load}
            nxt = {k: nxt_ds[k][()] for k in load} if nxt_ds is not None else _derive_next(obs)
            arrays = {n: ds[()] for n, ds in other.items()}
            _check_values(
                where,
                obs,
                nxt if nxt_ds is not None else {},
                arrays["actions"],
                arrays["rewards"],
                arrays["dones"],
                arrays.get("states"),
            )
            if keep:
                attrs = f["data"][name].attrs
                episodes.append(
                    Episode(
                        obs=obs,
                        next_obs=nxt,
                        actions=arrays["actions"],
                        rewards=arrays["rewards"],
                        dones=arrays["dones"],
                        states=arrays.get("states"),
                        model_file=_as_str(attrs["model_file"]) if "model_file" in attrs else None,
                    )
                )
        return RobomimicDataset(
            path=spath,
            episodes=episodes,
            env_args=env_args,
            masks=masks,
            demo_names=list(chosen) if keep else [],
        )


def read_dataset(
    path: PathLike,
    *,
    obs_keys: Sequence[str] | None = None,
    filter_key: str | None = None,
    max_episodes: int | None = None,
    derive_next_obs: bool = False,
) -> RobomimicDataset:
    """Load a robomimic-layout file into memory, checking it on the way.

    obs_keys: observation keys to load (default: all). Choosing the low-dim keys avoids reading images.
    filter_key: load only the demos listed in ``mask/<filter_key>`` (e.g. ``"train"``).
    max_episodes: load only the first N demos (in integer demo order, after filtering).
    derive_next_obs: for files without ``next_obs``: use obs[t+1], and for the last step repeat obs[T-1]
        (the true final observation was never stored). That repeat is exact only when the last step is
        treated as absorbing (robomimic PH demos end at success, see `load_transitions`); it is off by
        default so nothing is invented silently.

    Layout checks (groups, keys, shapes, `num_samples`, `total`, masks, env_args) cover the whole file; value
    checks (NaN/inf, actions in [-1, 1], dones in {0, 1}) cover the loaded arrays. Use `validate` to check
    every value.
    """
    return _read_file(path, obs_keys, filter_key, max_episodes, derive_next_obs, keep=True)


def validate(path: PathLike, *, derive_next_obs: bool = False) -> dict[str, Any]:
    """Check every group, key and value of a file (one demo in memory at a time); raise `DatasetError` on the
    first problem. Returns a short summary: number of demos, total samples, action dim and per-step
    observation shapes."""
    _read_file(path, None, None, None, derive_next_obs, keep=False)
    with h5py.File(str(path), "r") as f:
        names = _demo_names(f, str(path))
        first = f["data"][names[0]]
        return {
            "demos": len(names),
            "total": int(sum(int(f["data"][n]["actions"].shape[0]) for n in names)),
            "action_dim": int(first["actions"].shape[1]),
            "obs": {k: tuple(int(s) for s in v.shape[1:]) for k, v in first["obs"].items()},
            "masks": sorted(f["mask"].keys()) if "mask" in f else [],
        }


# ------------------------------------------------------------------------------------------------ writing


def _check_episode(where: str, ep: Episode) -> int:
    obs = {k: np.asarray(v) for k, v in ep.obs.items()}
    nxt = {k: np.asarray(v) for k, v in ep.next_obs.items()}
    extra = sorted(set(nxt) - set(obs))
    if extra:
        raise DatasetError(f"{where}/next_obs: keys {extra} have no counterpart in obs")
    actions, rewards, dones = np.asarray(ep.actions), np.asarray(ep.rewards), np.asarray(ep.dones)
    states = None if ep.states is None else np.asarray(ep.states)
    t = _check_layout(where, obs, nxt, actions, rewards, dones, states, None)
    _check_values(where, obs, nxt, actions, rewards, dones, states)
    return t


def _mask_array(names: Sequence[str]) -> np.ndarray:
    width = max([len(n) for n in names], default=1)
    return np.array([n.encode("utf-8") for n in names], dtype=f"S{width}")


def write_dataset(
    path: PathLike,
    episodes: Sequence[Episode],
    env_args: Mapping[str, Any],
    *,
    valid_fraction: float = 0.1,
    seed: int = 0,
    compression: Literal["gzip", "lzf"] | None = None,
    compression_opts: int | None = None,
    extra_masks: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Write episodes as ``data/demo_0 ... demo_{N-1}`` with robomimic's attributes and a train/valid split.

    Arrays keep their dtypes. `compression` (e.g. ``"gzip"``, as robomimic's image files use) applies to image
    observations (``*_image`` keys, uint8 [T, H, W, C]), which are then chunked one frame per chunk so a
    sampler can read single frames; low-dim arrays stay contiguous. ``mask/valid`` holds ``int(valid_fraction
    * N + 0.5)`` demos drawn with `seed` (at most N - 1), ``mask/train`` the rest. `extra_masks` adds more
    filter keys (demo names such as ``"demo_3"``). Every episode is checked first, and the file appears only
    when complete.
    """
    spath = str(path)
    if len(episodes) == 0:
        raise DatasetError(f"{spath}: no episodes to write")
    if not 0.0 <= valid_fraction < 1.0:
        raise DatasetError(f"{spath}: valid_fraction={valid_fraction}, expected 0 <= valid_fraction < 1")
    kwargs = env_args.get("env_kwargs")
    if isinstance(kwargs, Mapping):
        legacy = sorted(set(kwargs) & set(_LEGACY_ENV_KWARGS))
        if legacy:
            raise DatasetError(
                f"{spath}: env_args['env_kwargs'] holds {legacy}, which robosuite.make does not accept; "
                "robomimic passes env_kwargs to it unchanged. Put csil_lite's facts under "
                f"env_args['{CSIL_LITE_KEY}']"
            )
    try:
        env_json = json.dumps(dict(env_args))
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{spath}: env_args is not JSON-serialisable ({e})") from None
    names = [f"demo_{i}" for i in range(len(episodes))]
    consistency = _Consistency()
    lengths = []
    for name, ep in zip(names, episodes):
        where = f"{spath}: episode {name}"
        lengths.append(_check_episode(where, ep))
        consistency.check(where, np.asarray(ep.actions), {k: np.asarray(v) for k, v in ep.obs.items()})

    n = len(names)
    n_valid = min(int(valid_fraction * n + 0.5), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    valid_idx = sorted(int(i) for i in perm[:n_valid])
    masks = {
        "train": [names[i] for i in range(n) if i not in set(valid_idx)],
        "valid": [names[i] for i in valid_idx],
    }
    for key, members in (extra_masks or {}).items():
        unknown = [m for m in members if m not in set(names)]
        if unknown:
            raise DatasetError(f"{spath}: extra mask '{key}' names demos that are not written: {unknown[:5]}")
        masks[key] = sorted(members, key=lambda m: int(m[5:]))

    tmp = spath + ".partial"
    try:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            data.attrs["total"] = int(sum(lengths))
            data.attrs["env_args"] = env_json
            for name, ep, t in zip(names, episodes, lengths):
                grp = data.create_group(name)
                grp.attrs["num_samples"] = int(t)
                if ep.model_file is not None:
                    grp.attrs["model_file"] = ep.model_file
                for group_name, obs in (("obs", ep.obs), ("next_obs", ep.next_obs)):
                    og = grp.create_group(group_name)
                    for key, arr in obs.items():
                        arr = np.asarray(arr)
                        if compression is not None and _is_image_key(key):
                            og.create_dataset(
                                key,
                                data=arr,
                                compression=compression,
                                compression_opts=compression_opts,
                                chunks=(1, *arr.shape[1:]),
                            )
                        else:
                            og.create_dataset(key, data=arr)
                grp.create_dataset("actions", data=np.asarray(ep.actions))
                grp.create_dataset("rewards", data=np.asarray(ep.rewards))
                grp.create_dataset("dones", data=np.asarray(ep.dones))
                if ep.states is not None:
                    grp.create_dataset("states", data=np.asarray(ep.states))
            mask = f.create_group("mask")
            for key, members in masks.items():
                mask.create_dataset(key, data=_mask_array(members))
        os.replace(tmp, spath)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# -------------------------------------------------------------------------------------------- transitions

TerminalMode = Literal["done", "success", "never"]


def load_transitions(
    path: PathLike,
    obs_keys: Sequence[str],
    *,
    filter_key: str | None = None,
    max_episodes: int | None = None,
    terminal: TerminalMode = "done",
    derive_next_obs: bool = False,
    as_dict: bool = False,
) -> Transitions:
    """Flatten the low-dim `obs_keys` (in that order) of a robomimic file into `Transitions`; with `as_dict`, keep
    them as a dict observation instead (images stay uint8 [T, H, W, 3], low-dim keys become float32 leaves).

    `next_action` pairs each step with the demonstrator's next action in the same episode (zeros and `last=1`
    at the end). Which final steps are absorbing (`terminal=1`, no bootstrap):

    - ``"done"`` (default): the episode's last ``dones`` flag. robomimic PH demos stop at the first success
      and done_mode 2 marks it, so the last step is a success state and is treated as absorbing. This is
      consistent only if online episodes also end at success (robomimic's rollouts stop at success).
    - ``"success"``: last ``dones`` flag AND a positive last reward. Use it for files with failed demos,
      because done_mode 1/2 also sets ``dones=1`` at the end of a failed trajectory, which is a time-out, not
      an absorbing state.
    - ``"never"``: every episode end bootstraps (environments that keep running after success).

    ``dones`` flags before the last step (success states the operator kept going through) never cut an
    episode.
    """
    if terminal not in ("done", "success", "never"):
        raise ValueError(f"terminal={terminal!r}, expected 'done', 'success' or 'never'")
    keys = list(obs_keys)
    if not keys:
        raise DatasetError(
            f"{path}: obs_keys is empty; name the low-dim keys to flatten, e.g. robot0_eef_pos"
        )
    ds = read_dataset(
        path, obs_keys=keys, filter_key=filter_key, max_episodes=max_episodes, derive_next_obs=derive_next_obs
    )
    if not ds.episodes:
        raise DatasetError(f"{path}: filter key mask/{filter_key} selects no demos")
    first = ds.episodes[0]
    images = [k for k in keys if _is_image_key(k) or first.obs[k].ndim > 2]
    if images and not as_dict:
        shapes = {k: first.obs[k].shape[1:] for k in images}
        raise DatasetError(
            f"{path}: load_transitions flattens low-dim keys only; {shapes} are images or multi-axis arrays "
            "(use read_dataset for image observations)"
        )
    eps = []
    for ep in ds.episodes:
        if terminal == "done":
            term = bool(ep.dones[-1])
        elif terminal == "success":
            term = bool(ep.dones[-1]) and float(ep.rewards[-1]) > 0.0
        else:
            term = False
        eps.append(
            {
                "obs": {k: ep.obs[k] for k in keys} if as_dict else flatten_obs(ep.obs, keys),
                "next_obs": {k: ep.next_obs[k] for k in keys} if as_dict else flatten_obs(ep.next_obs, keys),
                "actions": ep.actions,
                "rewards": ep.rewards,
                "terminal": term,
            }
        )
    return episodes_to_transitions(eps)

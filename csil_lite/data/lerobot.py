"""Export robomimic-format HDF5 demonstrations to a LeRobot dataset (format v2.1), the input openpi fine-tunes on.

openpi's training pins a LeRobot commit that reads format **v2.1** (current LeRobot writes v3.0), so this writes
v2.1, with pyarrow only (no torch, no lerobot at run time)::

    meta/info.json                 codebase_version "v2.1", fps, counts, path templates, features
    meta/episodes.jsonl            {"episode_index", "tasks": [prompt], "length"} per episode
    meta/tasks.jsonl               {"task_index", "task"} per distinct prompt
    meta/episodes_stats.jsonl      {"episode_index", "stats": {feature: {min, max, mean, std, count}}}
    meta/norm_stats.json           openpi's normalisation file (state / actions: mean, std, q01, q99)
    meta/openpi_config.json        the values an openpi TrainConfig needs (keys, action horizon, prompt)
    data/chunk-000/episode_000000.parquet   one row per step

Features (LeRobot names): ``observation.state`` (8: eef position, eef axis-angle, gripper qpos: the layout of
openpi's LIBERO configs), ``observation.lowdim`` (csil_lite's flattened state keys, what the stand-in reads),
``action`` (7), ``next.reward``, ``next.done``, one ``observation.images.<camera>`` per ``<camera>_image`` key
(PNG bytes in an image column, as LeRobot's writer stores images when it does not encode videos), and LeRobot's
own ``timestamp``, ``frame_index``, ``episode_index``, ``index``, ``task_index``. The parquet files carry the
Hugging Face ``datasets`` feature schema in their metadata, as LeRobot's writer leaves it, so its loader decodes
image columns as images.

Files without the robosuite keys export every low-dim key (sorted) as ``observation.state``.
"""

from __future__ import annotations

import io
import json
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csil_lite.data.robomimic import DatasetError, read_dataset

__all__ = [
    "CODEBASE_VERSION",
    "LIBERO_STATE_KEYS",
    "export_lerobot",
    "quat_to_axis_angle",
    "read_lerobot_frames",
]

CODEBASE_VERSION = "v2.1"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
LIBERO_STATE_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
LIBERO_STATE_NAMES = ["eef_x", "eef_y", "eef_z", "eef_ax", "eef_ay", "eef_az", "gripper_l", "gripper_r"]
PROMPTS = {"lift": "lift the cube", "can": "pick up the can and place it in its bin",
           "square": "fit the square nut onto the square peg", "square_d0": "fit the square nut onto the square peg"}
ACTION_NAMES = ["dx", "dy", "dz", "drx", "dry", "drz", "gripper"]
OPENPI_ACTION_HORIZON = 10


def quat_to_axis_angle(quat_xyzw: np.ndarray) -> np.ndarray:
    """Axis-angle [.., 3] of unit quaternions [.., 4] in robosuite's (x, y, z, w) order; zero for no rotation."""
    q = np.asarray(quat_xyzw, np.float64)
    w = np.clip(q[..., 3], -1.0, 1.0)
    den = np.sqrt(1.0 - w * w)
    angle = 2.0 * np.arccos(w)
    scale = np.where(den > 1e-8, angle / np.maximum(den, 1e-8), 0.0)
    return (q[..., :3] * scale[..., None]).astype(np.float32)


def _state(obs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    if all(k in obs for k in LIBERO_STATE_KEYS):
        parts = [np.asarray(obs["robot0_eef_pos"], np.float32), quat_to_axis_angle(obs["robot0_eef_quat"]),
                 np.asarray(obs["robot0_gripper_qpos"], np.float32)]
        return np.concatenate(parts, axis=-1), LIBERO_STATE_NAMES
    keys = sorted(k for k in obs if not k.endswith("_image"))
    arrays = [np.asarray(obs[k], np.float32).reshape(len(obs[k]), -1) for k in keys]
    names = [f"{k}_{i}" for k, a in zip(keys, arrays) for i in range(a.shape[1])]
    return np.concatenate(arrays, axis=-1), names


def _lowdim(obs: Mapping[str, np.ndarray]) -> np.ndarray | None:
    from csil_lite.envs.robosuite import STATE_KEYS  # the lazy module: importing it does not load mujoco

    if not all(k in obs for k in STATE_KEYS):
        return None
    from csil_lite.obs import flatten_obs

    return flatten_obs(obs, STATE_KEYS)


def _png(frame: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _hf_feature(ft: Mapping[str, Any]) -> dict[str, Any]:
    """The Hugging Face `datasets` feature record LeRobot v2.1 derives from one info.json feature."""
    if ft["dtype"] == "image":
        return {"_type": "Image"}
    shape = list(ft["shape"])
    if shape == [1]:
        return {"dtype": ft["dtype"], "_type": "Value"}
    if len(shape) == 1:
        return {"feature": {"dtype": ft["dtype"], "_type": "Value"}, "length": shape[0], "_type": "Sequence"}
    raise ValueError(f"no datasets feature for shape {shape}")


def _arrow_column(values: np.ndarray | list, ft: Mapping[str, Any]):
    import pyarrow as pa

    if ft["dtype"] == "image":
        return pa.array([{"bytes": b, "path": None} for b in values],
                        type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    arr = np.asarray(values)
    if list(ft["shape"]) == [1]:
        return pa.array(arr.reshape(-1), type=pa.from_numpy_dtype(np.dtype(ft["dtype"])))
    flat = pa.array(arr.reshape(-1), type=pa.from_numpy_dtype(np.dtype(ft["dtype"])))
    return pa.FixedSizeListArray.from_arrays(flat, int(ft["shape"][0]))


def _stats(values: np.ndarray | list, ft: Mapping[str, Any]) -> dict[str, list]:
    """LeRobot's per-episode statistics: over frames; images per channel in [0, 1], shaped [3, 1, 1]."""
    if ft["dtype"] == "image":
        x = np.asarray(values, np.float64).transpose(0, 3, 1, 2) / 255.0  # [T, C, H, W]
        red = dict(axis=(0, 2, 3), keepdims=True)
        out = {"min": x.min(**red)[0], "max": x.max(**red)[0], "mean": x.mean(**red)[0], "std": x.std(**red)[0]}
    else:
        x = np.asarray(values, np.float64).reshape(len(values), -1)
        out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0)}
    res = {k: np.asarray(v).tolist() for k, v in out.items()}
    res["count"] = [int(len(values))]
    return res


def _quantiles(x: np.ndarray) -> dict[str, list]:
    x = np.asarray(x, np.float64)
    return {"mean": x.mean(0).tolist(), "std": x.std(0).tolist(), "q01": np.quantile(x, 0.01, axis=0).tolist(),
            "q99": np.quantile(x, 0.99, axis=0).tolist()}


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def export_lerobot(source: str | Path, out: str | Path, *, fps: int = 20, prompt: str | None = None,
                   images: str = "image", repo_id: str | None = None, robot_type: str = "panda",
                   max_episodes: int | None = None) -> dict[str, Any]:
    """Write the demos of robomimic file `source` as a LeRobot v2.1 dataset in `out` (created; it must not
    exist or be empty). `images`: "image" (PNG columns) or "none". Returns info.json's content."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if images not in ("image", "none"):
        raise ValueError(f"images={images!r}: expected 'image' or 'none' (video encoding is not implemented)")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out}: exists and is not an empty directory; choose a new --out")
    ds = read_dataset(source, max_episodes=max_episodes)
    task = (ds.env_args.get("csil_lite") or {}).get("task") or str(ds.env_args.get("env_name", "task")).lower()
    prompt = prompt if prompt is not None else PROMPTS.get(task, task)
    first = ds.episodes[0]
    cams = sorted(k for k in first.obs if k.endswith("_image")) if images == "image" else []
    state0, state_names = _state({k: v[:1] for k, v in first.obs.items()})
    low0 = _lowdim({k: v[:1] for k, v in first.obs.items()})
    act_dim = int(np.shape(first.actions)[1])
    features: dict[str, dict[str, Any]] = {}
    for cam in cams:
        h, w, c = np.shape(first.obs[cam])[1:]
        features[f"observation.images.{cam[:-len('_image')]}"] = {
            "dtype": "image", "shape": [int(h), int(w), int(c)], "names": ["height", "width", "channel"]}
    features["observation.state"] = {"dtype": "float32", "shape": [state0.shape[1]], "names": state_names}
    if low0 is not None:
        features["observation.lowdim"] = {"dtype": "float32", "shape": [low0.shape[1]], "names": None}
    features["action"] = {"dtype": "float32", "shape": [act_dim],
                          "names": ACTION_NAMES if act_dim == len(ACTION_NAMES) else None}
    features["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
    features["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    for name, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                        ("index", "int64"), ("task_index", "int64")):
        features[name] = {"dtype": dtype, "shape": [1], "names": None}
    hf_meta = json.dumps({"info": {"features": {k: _hf_feature(v) for k, v in features.items()}}})

    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "meta").mkdir(parents=True)
    episodes_rows, stats_rows, states, actions = [], [], [], []
    index = 0
    try:
        for ep_idx, ep in enumerate(ds.episodes):
            T = ep.num_samples
            state, _ = _state(ep.obs)
            cols: dict[str, Any] = {}
            for cam in cams:
                cols[f"observation.images.{cam[:-len('_image')]}"] = np.asarray(ep.obs[cam])
            cols["observation.state"] = state
            if low0 is not None:
                cols["observation.lowdim"] = _lowdim(ep.obs)
            cols["action"] = np.asarray(ep.actions, np.float32)
            cols["next.reward"] = np.asarray(ep.rewards, np.float32)
            cols["next.done"] = np.asarray(ep.dones).astype(bool)
            cols["timestamp"] = (np.arange(T) / fps).astype(np.float32)
            cols["frame_index"] = np.arange(T, dtype=np.int64)
            cols["episode_index"] = np.full(T, ep_idx, np.int64)
            cols["index"] = np.arange(index, index + T, dtype=np.int64)
            cols["task_index"] = np.zeros(T, np.int64)
            arrow = {}
            for name, ft in features.items():
                values = [_png(f) for f in cols[name]] if ft["dtype"] == "image" else cols[name]
                arrow[name] = _arrow_column(values, ft)
            table = pa.table(arrow).replace_schema_metadata({"huggingface": hf_meta})
            path = tmp / DATA_PATH.format(episode_chunk=ep_idx // CHUNKS_SIZE, episode_index=ep_idx)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
            episodes_rows.append({"episode_index": ep_idx, "tasks": [prompt], "length": T})
            stats_rows.append({"episode_index": ep_idx, "stats": {k: _stats(cols[k], ft) for k, ft in features.items()}})
            states.append(state)
            actions.append(cols["action"])
            index += T
        n = len(ds.episodes)
        info = {
            "codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": n,
            "total_frames": index, "total_tasks": 1, "total_videos": 0, "total_chunks": math.ceil(n / CHUNKS_SIZE),
            "chunks_size": CHUNKS_SIZE, "fps": fps, "splits": {"train": f"0:{n}"}, "data_path": DATA_PATH,
            "video_path": None, "features": features,
        }
        (tmp / "meta" / "info.json").write_text(json.dumps(info, indent=4) + "\n")
        _write_jsonl(tmp / "meta" / "episodes.jsonl", episodes_rows)
        _write_jsonl(tmp / "meta" / "tasks.jsonl", [{"task_index": 0, "task": prompt}])
        _write_jsonl(tmp / "meta" / "episodes_stats.jsonl", stats_rows)
        norm = {"norm_stats": {"state": _quantiles(np.concatenate(states)),
                               "actions": _quantiles(np.concatenate(actions))}}
        (tmp / "meta" / "norm_stats.json").write_text(json.dumps(norm, indent=1) + "\n")
        openpi = {
            "repo_id": repo_id or out.name,
            "codebase_version": CODEBASE_VERSION,
            "action_horizon": OPENPI_ACTION_HORIZON,
            "prompt": prompt,
            "fps": fps,
            # openpi's LeRobot data configs repack dataset keys into the keys the policy server receives:
            "repack": {"observation/state": "observation.state", "actions": "action", "prompt": "prompt",
                       **{f"observation/{'wrist_image' if 'hand' in c else 'image'}":
                          f"observation.images.{c[:-len('_image')]}" for c in cams}},
            "state_dim": int(state0.shape[1]), "action_dim": act_dim,
            "norm_stats": "meta/norm_stats.json (pi0.5: quantile normalisation, q01 -> -1, q99 -> +1)",
            "source": Path(source).name,
            # On the GPU box, in an openpi checkout (uv project). CONFIG is a TrainConfig you add to openpi's
            # training/config.py: Pi0Config(pi05=True, action_horizon=10, discrete_state_input=False), a LeRobot
            # data config with the repack above (like LeRobotLiberoDataConfig), weights from pi05_base.
            "commands": [
                f"ln -s $PWD/{out.name} $HF_LEROBOT_HOME/{repo_id or out.name}  # default ~/.cache/huggingface/lerobot",
                "uv run scripts/compute_norm_stats.py --config-name CONFIG",
                "XLA_PYTHON_CLIENT_MEM_FRACTION=0.9 uv run scripts/train.py CONFIG --exp-name=EXP --overwrite",
                "uv run scripts/serve_policy.py policy:checkpoint --policy.config=CONFIG "
                "--policy.dir=checkpoints/CONFIG/EXP/STEP",
            ],
        }
        (tmp / "meta" / "openpi_config.json").write_text(json.dumps(openpi, indent=1) + "\n")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return info


def read_lerobot_frames(root: str | Path) -> dict[str, np.ndarray]:
    """Every column of a v2.1 dataset written here, concatenated over episodes in index order (images decoded
    to uint8 [N, H, W, 3]); for tests and checks, with pyarrow and PIL only."""
    import pyarrow.parquet as pq
    from PIL import Image

    root = Path(root)
    info = json.loads((root / "meta" / "info.json").read_text())
    cols: dict[str, list] = {k: [] for k in info["features"]}
    for ep in range(info["total_episodes"]):
        path = root / info["data_path"].format(episode_chunk=ep // info["chunks_size"], episode_index=ep)
        table = pq.read_table(path)
        for name, ft in info["features"].items():
            col = table.column(name).to_pylist()
            if ft["dtype"] == "image":
                cols[name] += [np.asarray(Image.open(io.BytesIO(v["bytes"]))) for v in col]
            else:
                cols[name] += col
    return {k: np.asarray(v) for k, v in cols.items()}

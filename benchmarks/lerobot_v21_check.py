"""Load a `csil-lite demos export-lerobot` dataset with LeRobot's own v2.1 reader and compare it frame by frame
with the source HDF5.

LeRobot >= 0.4 reads format v3.0 only and needs Python >= 3.12; openpi pins a LeRobot commit that reads v2.1.
The last PyPI release that reads v2.1 is lerobot 0.3.3 (torch, datasets <= 3.6), which cannot share a venv with
csil_lite (numpy 2 / jax), so it lives in its own::

    python3.11 -m venv ../lerobot-v21 && ../lerobot-v21/bin/pip install lerobot==0.3.3
    .venv/bin/python benchmarks/lerobot_v21_check.py --lerobot-python ../lerobot-v21/bin/python \
        [--source demos.hdf5]      # default: a synthetic 3-episode file with two 16x12 cameras

The first half (this venv) exports and stores the expected frames as .npz; the second half runs this same file
under the LeRobot venv with `--check DIR EXPECTED.npz` (it imports lerobot and numpy only), builds
`LeRobotDataset(repo_id, root=DIR)` offline and compares every frame: actions, states, rewards, images
(LeRobot returns them as float CHW in [0, 1]; compared after * 255 and rounding), indices and the task string.

Result when written (lerobot 0.3.3, torch 2.7.1, datasets 3.6.0): the synthetic file (3 episodes, 21 frames) and
3 scripted Lift demos with 84x84 agentview + eye-in-hand images (134 frames) load and equal their source frame
for frame; a tampered expectation (one action off by 1e-6, one pixel bit) is reported as 2 mismatches.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def check(root: str, expected_path: str) -> None:
    """Runs under the LeRobot venv."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import lerobot
    from lerobot.datasets.lerobot_dataset import CODEBASE_VERSION, LeRobotDataset

    exp = dict(np.load(expected_path, allow_pickle=False))
    ds = LeRobotDataset("local/csil_lite_export", root=root)
    n = len(ds)
    print(f"lerobot {getattr(lerobot, '__version__', '?')} (reads {CODEBASE_VERSION}): {ds.num_episodes} episodes, "
          f"{n} frames, features {sorted(ds.features)}")
    assert n == len(exp["action"]), (n, len(exp["action"]))
    cams = [k for k in exp if k.startswith("observation.images.")]
    bad = []
    for i in range(n):
        item = ds[i]
        for key in ("action", "observation.state", "observation.lowdim", "next.reward", "frame_index",
                    "episode_index", "index", "timestamp"):
            if key not in exp:
                continue
            got = item[key].numpy().reshape(exp[key][i].shape)
            if not np.array_equal(got, exp[key][i]):
                bad.append(f"frame {i} {key}: {got} != {exp[key][i]}")
        for cam in cams:
            img = np.round(item[cam].numpy().transpose(1, 2, 0) * 255.0).astype(np.uint8)
            if not np.array_equal(img, exp[cam][i]):
                bad.append(f"frame {i} {cam}: differs")
        if item["task"] != str(exp["task"]):
            bad.append(f"frame {i} task {item['task']!r} != {str(exp['task'])!r}")
    if bad:
        print("\n".join(bad[:20]))
        raise SystemExit(f"{len(bad)} mismatches")
    print(f"all {n} frames equal to the source (actions, state, lowdim, reward, indices, timestamps, "
          f"{len(cams)} cameras, task)")


def _synthetic(path: Path) -> None:
    from csil_lite.data.robomimic import Episode, write_dataset

    rng = np.random.default_rng(0)
    eps = []
    for T in (9, 5, 7):
        q = rng.standard_normal((T, 4))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        obs = {"robot0_eef_pos": rng.standard_normal((T, 3)), "robot0_eef_quat": q,
               "robot0_gripper_qpos": rng.standard_normal((T, 2)), "object": rng.standard_normal((T, 10)),
               "agentview_image": rng.integers(0, 256, (T, 16, 12, 3), dtype=np.uint8),
               "robot0_eye_in_hand_image": rng.integers(0, 256, (T, 16, 12, 3), dtype=np.uint8)}
        rewards = (np.arange(T) == T - 1).astype(np.float64)
        eps.append(Episode(obs=obs, next_obs={k: np.concatenate([v[1:], v[-1:]]) for k, v in obs.items()},
                           actions=rng.uniform(-1, 1, (T, 7)), rewards=rewards, dones=rewards.astype(np.int64)))
    write_dataset(path, eps, {"env_name": "Lift", "type": 1, "env_kwargs": {}, "csil_lite": {"task": "lift"}})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", nargs=2, metavar=("DIR", "EXPECTED"), help=argparse.SUPPRESS)
    p.add_argument("--lerobot-python", help="python of a venv with lerobot==0.3.3")
    p.add_argument("--source", help="robomimic HDF5 to export (default: synthetic)")
    p.add_argument("--keep", help="export here instead of a temporary directory")
    args = p.parse_args()
    if args.check:
        check(*args.check)
        return
    if not args.lerobot_python:
        p.error("--lerobot-python is required (see the module docstring)")
    from csil_lite.data.lerobot import export_lerobot, read_lerobot_frames

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(args.source) if args.source else Path(tmp) / "synthetic.hdf5"
        if not args.source:
            _synthetic(source)
        out = Path(args.keep) if args.keep else Path(tmp) / "lerobot"
        info = export_lerobot(source, out)
        frames = read_lerobot_frames(out)  # pyarrow's reading of our files, checked against the HDF5 below
        from csil_lite.data.lerobot import quat_to_axis_angle
        from csil_lite.data.robomimic import read_dataset

        ds = read_dataset(source)
        cat = {k: np.concatenate([ep.obs[k] for ep in ds.episodes]) for k in ds.episodes[0].obs}
        expected = {
            "action": np.concatenate([ep.actions for ep in ds.episodes]).astype(np.float32),
            "observation.state": np.concatenate([cat["robot0_eef_pos"].astype(np.float32),
                                                 quat_to_axis_angle(cat["robot0_eef_quat"]),
                                                 cat["robot0_gripper_qpos"].astype(np.float32)], axis=1),
            "next.reward": np.concatenate([ep.rewards for ep in ds.episodes]).astype(np.float32),
            "task": np.array(json.loads((out / "meta" / "tasks.jsonl").read_text())["task"]),
        }
        from csil_lite.data.transitions import flatten_obs
        from csil_lite.envs.robosuite import STATE_KEYS

        lengths = [ep.num_samples for ep in ds.episodes]
        expected["observation.lowdim"] = flatten_obs(cat, STATE_KEYS)
        expected["frame_index"] = np.concatenate([np.arange(T) for T in lengths])
        expected["episode_index"] = np.repeat(np.arange(len(lengths)), lengths)
        expected["index"] = np.arange(sum(lengths))
        expected["timestamp"] = (expected["frame_index"] / info["fps"]).astype(np.float32)
        for k in cat:
            if k.endswith("_image"):
                expected[f"observation.images.{k[:-len('_image')]}"] = cat[k]
        np.testing.assert_array_equal(frames["action"], expected["action"])
        np.savez(Path(tmp) / "expected.npz", **expected)
        print(f"exported {info['total_episodes']} episodes / {info['total_frames']} frames from {source.name}")
        subprocess.run([args.lerobot_python, __file__, "--check", str(out), str(Path(tmp) / "expected.npz")],
                       check=True)


if __name__ == "__main__":
    main()

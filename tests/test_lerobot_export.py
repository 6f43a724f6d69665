"""LeRobot v2.1 export: the layout field by field against LeRobot 0.3.3's v2.1 reader (its constants and the
records its `LeRobotDatasetMetadata` / `load_hf_dataset` read), and the frames equal to the source HDF5.
The check with LeRobot's own loader runs in its own venv: benchmarks/lerobot_v21_check.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from csil_lite import cli
from csil_lite.data.lerobot import export_lerobot, quat_to_axis_angle, read_lerobot_frames
from csil_lite.data.robomimic import DatasetError, Episode, read_dataset, write_dataset

LENGTHS = (7, 4, 5)


def _episode(rng, T, images=True):
    q = rng.standard_normal((T, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    obs = {"robot0_eef_pos": rng.standard_normal((T, 3)), "robot0_eef_quat": q,
           "robot0_gripper_qpos": rng.standard_normal((T, 2)), "object": rng.standard_normal((T, 10))}
    if images:
        obs["agentview_image"] = rng.integers(0, 256, (T, 8, 6, 3), dtype=np.uint8)
        obs["robot0_eye_in_hand_image"] = rng.integers(0, 256, (T, 8, 6, 3), dtype=np.uint8)
    nxt = {k: np.concatenate([v[1:], v[-1:]]) for k, v in obs.items()}
    rewards = np.zeros(T)
    rewards[-1] = 1
    return Episode(obs=obs, next_obs=nxt, actions=rng.uniform(-1, 1, (T, 7)), rewards=rewards,
                   dones=(np.arange(T) == T - 1).astype(np.int64))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("src") / "lift.hdf5"
    env_args = {"env_name": "Lift", "type": 1, "env_version": "1.5.1", "env_kwargs": {},
                "csil_lite": {"task": "lift"}}
    write_dataset(path, [_episode(rng, T) for T in LENGTHS], env_args)
    return path


@pytest.fixture(scope="module")
def exported(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "lift_lerobot"
    info = export_lerobot(source, out, fps=20)
    return out, info


def test_axis_angle_known_values():
    s = np.sqrt(0.5)
    aa = quat_to_axis_angle(np.array([[0, 0, 0, 1.0], [0, 0, s, s], [1.0, 0, 0, 0]]))
    np.testing.assert_allclose(aa, [[0, 0, 0], [0, 0, np.pi / 2], [np.pi, 0, 0]], atol=1e-6)


def test_layout_matches_lerobot_v21(exported):
    out, info = exported
    n, total = len(LENGTHS), sum(LENGTHS)
    # meta files LeRobot 0.3.3 reads (INFO_PATH, EPISODES_PATH, TASKS_PATH, EPISODES_STATS_PATH)
    for f in ("info.json", "episodes.jsonl", "tasks.jsonl", "episodes_stats.jsonl"):
        assert (out / "meta" / f).is_file()
    on_disk = json.loads((out / "meta" / "info.json").read_text())
    assert on_disk == info
    # the keys of LeRobot's create_empty_dataset_info, with the counts filled in
    assert set(info) == {"codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks",
                         "total_videos", "total_chunks", "chunks_size", "fps", "splits", "data_path",
                         "video_path", "features"}
    assert info["codebase_version"] == "v2.1" and info["fps"] == 20 and info["chunks_size"] == 1000
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"], info["total_chunks"]) == (n, total, 1, 1)
    assert info["splits"] == {"train": f"0:{n}"} and info["video_path"] is None and info["total_videos"] == 0
    assert info["data_path"] == "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
    feats = info["features"]
    for name, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                        ("index", "int64"), ("task_index", "int64")):  # LeRobot's DEFAULT_FEATURES
        assert feats[name] == {"dtype": dtype, "shape": [1], "names": None}
    assert feats["observation.images.agentview"] == {"dtype": "image", "shape": [8, 6, 3],
                                                     "names": ["height", "width", "channel"]}
    assert feats["observation.state"]["shape"] == [8] and feats["action"]["shape"] == [7]
    assert all("/" not in k for k in feats)  # LeRobot refuses "/" in feature names
    for ep in range(n):
        assert (out / f"data/chunk-000/episode_{ep:06d}.parquet").is_file()
    eps = [json.loads(line) for line in (out / "meta" / "episodes.jsonl").read_text().splitlines()]
    assert eps == [{"episode_index": i, "tasks": ["lift the cube"], "length": T} for i, T in enumerate(LENGTHS)]
    tasks = [json.loads(line) for line in (out / "meta" / "tasks.jsonl").read_text().splitlines()]
    assert tasks == [{"task_index": 0, "task": "lift the cube"}]
    stats = [json.loads(line) for line in (out / "meta" / "episodes_stats.jsonl").read_text().splitlines()]
    assert [s["episode_index"] for s in stats] == list(range(n))
    for s, T in zip(stats, LENGTHS):
        assert set(s["stats"]) == set(feats)
        for name, st in s["stats"].items():
            assert set(st) == {"min", "max", "mean", "std", "count"} and st["count"] == [T]
        assert np.shape(s["stats"]["observation.images.agentview"]["mean"]) == (3, 1, 1)
        assert np.shape(s["stats"]["action"]["mean"]) == (7,) and np.shape(s["stats"]["timestamp"]["min"]) == (1,)


def test_parquet_schema_is_what_datasets_expects(exported):
    out, info = exported
    table = pq.read_table(out / "data/chunk-000/episode_000001.parquet")
    schema = table.schema
    assert schema.field("action").type == pa.list_(pa.float32(), 7)
    assert schema.field("observation.state").type == pa.list_(pa.float32(), 8)
    assert schema.field("timestamp").type == pa.float32() and schema.field("index").type == pa.int64()
    assert schema.field("next.done").type == pa.bool_()
    assert schema.field("observation.images.agentview").type == pa.struct(
        [("bytes", pa.binary()), ("path", pa.string())])
    hf = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert hf["observation.images.agentview"] == {"_type": "Image"}
    assert hf["action"] == {"feature": {"dtype": "float32", "_type": "Value"}, "length": 7, "_type": "Sequence"}
    assert hf["index"] == {"dtype": "int64", "_type": "Value"}
    assert set(hf) == set(info["features"]) and table.num_rows == LENGTHS[1]


def test_frames_equal_the_source(source, exported):
    out, info = exported
    frames = read_lerobot_frames(out)
    ds = read_dataset(source)
    cat = {k: np.concatenate([ep.obs[k] for ep in ds.episodes]) for k in ds.episodes[0].obs}
    np.testing.assert_array_equal(frames["action"], np.concatenate([ep.actions for ep in ds.episodes]).astype(np.float32))
    np.testing.assert_array_equal(frames["observation.images.agentview"], cat["agentview_image"])
    np.testing.assert_array_equal(frames["observation.images.robot0_eye_in_hand"], cat["robot0_eye_in_hand_image"])
    np.testing.assert_array_equal(frames["observation.state"][:, :3], cat["robot0_eef_pos"].astype(np.float32))
    np.testing.assert_array_equal(frames["observation.state"][:, 6:], cat["robot0_gripper_qpos"].astype(np.float32))
    np.testing.assert_allclose(frames["observation.state"][:, 3:6], quat_to_axis_angle(cat["robot0_eef_quat"]))
    np.testing.assert_array_equal(frames["next.reward"], np.concatenate([ep.rewards for ep in ds.episodes]))
    np.testing.assert_array_equal(frames["index"], np.arange(sum(LENGTHS)))
    np.testing.assert_array_equal(frames["frame_index"], np.concatenate([np.arange(T) for T in LENGTHS]))
    np.testing.assert_array_equal(frames["episode_index"], np.repeat(np.arange(3), LENGTHS))
    # LeRobot's check_timestamps_sync: 1/fps apart within 1e-4 s inside each episode
    ts, ep = frames["timestamp"], frames["episode_index"]
    inside = ep[1:] == ep[:-1]
    assert np.all(np.abs(np.diff(ts)[inside] - 1 / 20) <= 1e-4)


def test_openpi_values_next_to_the_export(exported):
    out, _ = exported
    cfg = json.loads((out / "meta" / "openpi_config.json").read_text())
    assert cfg["action_horizon"] == 10 and cfg["repack"]["observation/state"] == "observation.state"
    assert cfg["repack"]["actions"] == "action"
    assert cfg["repack"]["observation/image"] == "observation.images.agentview"
    assert cfg["repack"]["observation/wrist_image"] == "observation.images.robot0_eye_in_hand"
    norm = json.loads((out / "meta" / "norm_stats.json").read_text())["norm_stats"]
    for key, dim in (("state", 8), ("actions", 7)):
        assert set(norm[key]) == {"mean", "std", "q01", "q99"} and len(norm[key]["q01"]) == dim
        assert all(lo <= hi for lo, hi in zip(norm[key]["q01"], norm[key]["q99"]))


def test_refuses_a_non_empty_target(source, exported):
    out, _ = exported
    with pytest.raises(DatasetError, match="not an empty directory"):
        export_lerobot(source, out)


def test_cli_export_without_images(source, tmp_path, capsys):
    out = tmp_path / "ds"
    assert cli.main(["demos", "export-lerobot", str(source), "--out", str(out), "--images", "none",
                     "--prompt", "lift it"]) == 0
    assert re.search(r"3 episodes, 16 frames", capsys.readouterr().out)
    info = json.loads((out / "meta" / "info.json").read_text())
    assert not any(k.startswith("observation.images") for k in info["features"])
    assert json.loads((out / "meta" / "tasks.jsonl").read_text())["task"] == "lift it"
    assert cli.main(["demos", "export-lerobot", str(tmp_path / "missing.hdf5"), "--out", str(tmp_path / "x")]) == 2

"""robomimic HDF5 layout: round trips, transition semantics, a real-layout file, a malformed-file corpus."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from csil_lite.data.robomimic import (
    ACTION_TOLERANCE,
    DatasetError,
    Episode,
    LegacyFileWarning,
    load_transitions,
    read_dataset,
    validate,
    write_dataset,
)

LOW_DIM = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object"]
LOW_DIM_SHAPES = {
    "robot0_eef_pos": (3,),
    "robot0_eef_quat": (4,),
    "robot0_gripper_qpos": (2,),
    "object": (14,),
}
IMAGES = ["agentview_image", "robot0_eye_in_hand_image"]
ENV_ARGS = {
    "env_name": "NutAssemblySquare",
    "env_version": "1.5.1",
    "type": 1,
    "env_kwargs": {
        "robots": ["Panda"],
        "control_freq": 20,
        "has_offscreen_renderer": True,
        "use_camera_obs": True,
        "camera_names": ["agentview", "robot0_eye_in_hand"],
        "camera_heights": 8,
        "camera_widths": 8,
        "reward_shaping": False,
        "ignore_done": True,
        "controller_configs": {"type": "OSC_POSE", "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5]},
    },
}


def make_obs(rng: np.random.Generator, t: int, images: bool) -> dict[str, np.ndarray]:
    """t+1 observations (float64 like robomimic low-dim files, uint8 images)."""
    obs = {k: rng.normal(size=(t + 1, *s)) for k, s in LOW_DIM_SHAPES.items()}
    if images:
        for k in IMAGES:
            obs[k] = rng.integers(0, 256, size=(t + 1, 8, 8, 3), dtype=np.uint8)
    return obs


def make_episode(
    rng: np.random.Generator,
    t: int,
    *,
    images: bool = True,
    states: bool = True,
    success: bool = True,
    done_last: bool = True,
) -> Episode:
    full = make_obs(rng, t, images)
    rewards = np.zeros(t)
    dones = np.zeros(t, dtype=np.int64)
    if success:
        rewards[-1] = 1.0
    if done_last:
        dones[-1] = 1
    return Episode(
        obs={k: v[:-1] for k, v in full.items()},
        next_obs={k: v[1:] for k, v in full.items()},
        actions=rng.uniform(-1.0, 1.0, size=(t, 7)),
        rewards=rewards,
        dones=dones,
        states=rng.normal(size=(t, 45)) if states else None,
        model_file="<mujoco model='square'>" + "<!-- padding -->" * 5000 + "</mujoco>" if states else None,
    )


def assert_same_array(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != {b.dtype}"
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    np.testing.assert_array_equal(a, b, err_msg=what)


# ------------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_round_trip_identical_arrays_and_attributes(tmp_path: Path, compression: str | None) -> None:
    rng = np.random.default_rng(0)
    eps = [make_episode(rng, t) for t in (5, 9, 3, 12, 7)]
    eps[2].states = None  # states are optional per demo
    eps[2].model_file = None
    path = tmp_path / "square.hdf5"
    write_dataset(path, eps, ENV_ARGS, valid_fraction=0.4, seed=3, compression=compression)
    assert not (tmp_path / "square.hdf5.partial").exists()

    ds = read_dataset(path)
    assert ds.env_args == ENV_ARGS
    assert ds.demo_names == [f"demo_{i}" for i in range(5)]
    assert ds.total == sum(e.num_samples for e in eps) == 36
    for name, got, want in zip(ds.demo_names, ds.episodes, eps):
        assert set(got.obs) == set(want.obs) and set(got.next_obs) == set(want.next_obs)
        for k in want.obs:
            assert_same_array(got.obs[k], want.obs[k], f"{name}/obs/{k}")
            assert_same_array(got.next_obs[k], want.next_obs[k], f"{name}/next_obs/{k}")
        for field in ("actions", "rewards", "dones"):
            assert_same_array(getattr(got, field), getattr(want, field), f"{name}/{field}")
        if want.states is None:
            assert got.states is None
        else:
            assert_same_array(got.states, want.states, f"{name}/states")
        assert got.model_file == want.model_file
    assert got.obs["agentview_image"].dtype == np.uint8

    # masks: a split of all demos, sizes from valid_fraction, deterministic in the seed
    assert set(ds.masks) == {"train", "valid"}
    assert len(ds.masks["valid"]) == 2 and len(ds.masks["train"]) == 3
    assert sorted(ds.masks["train"] + ds.masks["valid"]) == sorted(ds.demo_names)

    # the raw layout is robomimic's: attribute types, byte-string masks, compression only on images
    with h5py.File(path, "r") as f:
        assert int(f["data"].attrs["total"]) == 36
        assert json.loads(f["data"].attrs["env_args"]) == ENV_ARGS
        assert int(f["data/demo_3"].attrs["num_samples"]) == 12
        assert "model_file" not in f["data/demo_2"].attrs and "states" not in f["data/demo_2"]
        assert f["mask/train"].dtype.kind == "S"
        assert all(isinstance(v, bytes) for v in f["mask/valid"][()])
        img = f["data/demo_0/obs/agentview_image"]
        assert img.compression == compression
        assert f["data/demo_0/obs/object"].compression is None
        if compression:
            assert img.chunks == (1, 8, 8, 3)


def test_split_is_seeded(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    eps = [make_episode(rng, 3, images=False, states=False) for _ in range(20)]
    masks = []
    for i, seed in enumerate((0, 0, 1)):
        write_dataset(tmp_path / f"{i}.hdf5", eps, ENV_ARGS, seed=seed)
        masks.append(read_dataset(tmp_path / f"{i}.hdf5").masks)
    assert masks[0] == masks[1]
    assert masks[0]["valid"] != masks[2]["valid"]
    assert len(masks[0]["valid"]) == 2 and len(masks[0]["train"]) == 18
    write_dataset(
        tmp_path / "nv.hdf5", eps, ENV_ARGS, valid_fraction=0.0, extra_masks={"first2": ["demo_1", "demo_0"]}
    )
    m = read_dataset(tmp_path / "nv.hdf5").masks
    assert m["valid"] == [] and len(m["train"]) == 20 and m["first2"] == ["demo_0", "demo_1"]


def test_obs_keys_filter_key_and_max_episodes(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    eps = [make_episode(rng, 4) for _ in range(10)]
    path = tmp_path / "d.hdf5"
    write_dataset(path, eps, ENV_ARGS, valid_fraction=0.3)
    ds = read_dataset(path, obs_keys=LOW_DIM, filter_key="valid")
    assert all(set(e.obs) == set(LOW_DIM) == set(e.next_obs) for e in ds.episodes)
    assert ds.demo_names == ds.masks["valid"] and len(ds.episodes) == 3
    i = int(ds.demo_names[0][5:])
    np.testing.assert_array_equal(ds.episodes[0].actions, eps[i].actions)
    assert read_dataset(path, max_episodes=2).demo_names == ["demo_0", "demo_1"]
    with pytest.raises(DatasetError, match="mask/test"):
        read_dataset(path, filter_key="test")


# ------------------------------------------------------------------------------------------ transitions


def test_load_transitions_shapes_and_semantics(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    eps = [
        make_episode(rng, 6),  # success, dones[-1] = 1
        make_episode(rng, 4, success=False, done_last=False),  # cut by a time limit
        make_episode(rng, 5, success=False),  # failed, but done_mode 2 still sets dones[-1] = 1
    ]
    eps[0].dones[2] = 1  # a success state the operator went through: must not cut the episode
    path = tmp_path / "t.hdf5"
    write_dataset(path, eps, ENV_ARGS)
    tr = load_transitions(path, LOW_DIM)
    assert tr.size == 15 and tr.obs_dim == 3 + 4 + 2 + 14 and tr.act_dim == 7
    assert tr.obs.dtype == np.float32 and tr.action.dtype == np.float32

    # obs rows are the declared keys concatenated in order
    want_obs = np.concatenate([np.concatenate([e.obs[k] for k in LOW_DIM], axis=1) for e in eps]).astype(
        np.float32
    )
    want_next = np.concatenate([np.concatenate([e.next_obs[k] for k in LOW_DIM], axis=1) for e in eps])
    np.testing.assert_array_equal(tr.obs, want_obs)
    np.testing.assert_array_equal(tr.next_obs, want_next.astype(np.float32))
    np.testing.assert_array_equal(
        tr.obs[:3], np.concatenate([eps[0].obs[k][:3] for k in LOW_DIM], 1).astype(np.float32)
    )

    ends = np.array([5, 9, 14])
    last = np.zeros(15, np.float32)
    last[ends] = 1
    np.testing.assert_array_equal(tr.last, last)
    # next_action: the next action of the same episode, zero at episode ends (never the next episode's first)
    acts = np.concatenate([e.actions for e in eps]).astype(np.float32)
    for i in range(15):
        want = np.zeros(7, np.float32) if i in ends else acts[i + 1]
        np.testing.assert_array_equal(tr.next_action[i], want)
    np.testing.assert_array_equal(tr.reward, np.concatenate([e.rewards for e in eps]).astype(np.float32))

    term = {
        "done": [1, 0, 1],
        "success": [1, 0, 0],
        "never": [0, 0, 0],
    }
    for mode, flags in term.items():
        t = load_transitions(path, LOW_DIM, terminal=mode).terminal
        want = np.zeros(15, np.float32)
        want[ends] = flags
        np.testing.assert_array_equal(t, want, err_msg=mode)

    sub = load_transitions(path, ["object", "robot0_eef_pos"], max_episodes=2)
    assert sub.size == 10 and sub.obs_dim == 17
    want_sub = np.concatenate([eps[0].obs["object"], eps[1].obs["object"]]).astype(np.float32)
    np.testing.assert_array_equal(sub.obs[:, :14], want_sub)


def test_load_transitions_rejects_images_and_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "img.hdf5"
    write_dataset(path, [make_episode(np.random.default_rng(4), 3)], ENV_ARGS)
    with pytest.raises(DatasetError, match="agentview_image"):
        load_transitions(path, ["robot0_eef_pos", "agentview_image"])
    with pytest.raises(DatasetError, match=r"img\.hdf5.*demo_0/obs.*cube_pos"):
        load_transitions(path, ["cube_pos"])


# ------------------------------------------------------------------------------------ real-layout file


def write_real_layout(
    path: Path, names: list[str], *, next_obs: bool = True
) -> dict[str, dict[str, np.ndarray]]:
    """Write a file with h5py alone, the way robomimic's dataset_states_to_obs.py + split_train_val.py leave
    it (float64 low-dim obs, int64 dones, gzip images, env_args JSON, ep_meta, byte-string masks, extra
    groups)."""
    rng = np.random.default_rng(5)
    raw = {}
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        total = 0
        for n in names:
            t = int(rng.integers(3, 8))
            total += t
            g = data.create_group(n)
            g.attrs["num_samples"] = t
            g.attrs["model_file"] = "<mujoco model='base'></mujoco>"
            g.attrs["ep_meta"] = "{}"
            full = make_obs(rng, t, images=True)
            for k, v in full.items():
                if k in IMAGES:
                    g.create_dataset(f"obs/{k}", data=v[:-1], compression="gzip")
                    if next_obs:
                        g.create_dataset(f"next_obs/{k}", data=v[1:], compression="gzip")
                else:
                    g.create_dataset(f"obs/{k}", data=v[:-1])
                    if next_obs:
                        g.create_dataset(f"next_obs/{k}", data=v[1:])
            actions = np.clip(rng.normal(scale=0.5, size=(t, 7)), -1.0, 1.0)
            actions[0, 6] = -1.0
            g.create_dataset("actions", data=actions)
            g.create_dataset("states", data=rng.normal(size=(t, 71)))
            rewards = np.zeros(t)
            rewards[-1] = 1.0
            g.create_dataset("rewards", data=rewards)
            dones = np.zeros(t, dtype=np.int64)
            dones[-1] = 1
            g.create_dataset("dones", data=dones)
            g.create_dataset("action_dict/abs_pos", data=rng.normal(size=(t, 3)))  # newer files; ignored
            raw[n] = {"actions": actions, **{f"obs/{k}": v[:-1] for k, v in full.items()}, "full": full}
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps(ENV_ARGS)
        f.create_dataset("mask/train", data=np.array([n.encode() for n in names[1:]]))
        f.create_dataset("mask/valid", data=np.array([names[0].encode()]))
        f.create_dataset("mask/20_percent", data=np.array([n.encode() for n in names[:2]]))
    return raw


@pytest.mark.parametrize(
    "start", [0, 1]
)  # robomimic files start at demo_0, robosuite's raw collections at demo_1
def test_real_layout_file_loads(tmp_path: Path, start: int) -> None:
    names = [f"demo_{i}" for i in range(start, start + 12)]
    path = tmp_path / "low_dim_v15.hdf5"
    raw = write_real_layout(path, names)
    summary = validate(path)
    assert summary["demos"] == 12 and summary["action_dim"] == 7
    assert summary["obs"]["object"] == (14,) and summary["obs"]["agentview_image"] == (8, 8, 3)
    ds = read_dataset(path)
    assert ds.demo_names == names  # integer order: demo_10 comes after demo_9, not after demo_1
    assert ds.masks["valid"] == [names[0]] and ds.masks["20_percent"] == names[:2]
    assert ds.env_args["env_name"] == "NutAssemblySquare"
    for n, ep in zip(ds.demo_names, ds.episodes):
        assert_same_array(ep.actions, raw[n]["actions"], f"{n}/actions")
        assert_same_array(ep.obs["agentview_image"], raw[n]["obs/agentview_image"], f"{n}/image")
        assert ep.dones.dtype == np.int64 and ep.states.shape[1] == 71
    tr = load_transitions(path, LOW_DIM, filter_key="train")
    assert tr.obs_dim == 23 and tr.size == sum(raw[n]["actions"].shape[0] for n in names[1:])
    assert tr.terminal.sum() == 11 and tr.last.sum() == 11


def test_missing_next_obs_is_an_error_unless_derived(tmp_path: Path) -> None:
    path = tmp_path / "no_next.hdf5"
    raw = write_real_layout(path, ["demo_0", "demo_1"], next_obs=False)
    with pytest.raises(DatasetError, match=r"no_next\.hdf5: data/demo_0.*next_obs.*derive_next_obs"):
        read_dataset(path)
    ds = read_dataset(path, derive_next_obs=True)
    for n, ep in zip(ds.demo_names, ds.episodes):
        full = raw[n]["full"]["object"]
        np.testing.assert_array_equal(ep.next_obs["object"][:-1], full[1:-1])
        np.testing.assert_array_equal(ep.next_obs["object"][-1], full[-2])  # last one repeats obs[T-1]
    tr = load_transitions(path, LOW_DIM, derive_next_obs=True)
    assert tr.size == sum(raw[n]["actions"].shape[0] for n in raw)


def test_action_within_tolerance_is_accepted(tmp_path: Path) -> None:
    ep = make_episode(np.random.default_rng(6), 3, images=False)
    ep.actions[0, 0] = 1.0 + ACTION_TOLERANCE / 2
    write_dataset(tmp_path / "ok.hdf5", [ep], ENV_ARGS)
    assert read_dataset(tmp_path / "ok.hdf5").episodes[0].actions[0, 0] == 1.0 + ACTION_TOLERANCE / 2


# ------------------------------------------------------------------------------------ malformed corpus


def _replace(f: h5py.File, name: str, data: np.ndarray) -> None:
    del f[name]
    f.create_dataset(name, data=data)


def _scale(f: h5py.File, name: str, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    _replace(f, name, fn(f[name][()]))


def _set_value(name: str, index: tuple, value: float) -> Callable[[h5py.File], None]:
    def mutate(f: h5py.File) -> None:
        arr = f[name][()]
        arr[index] = value
        _replace(f, name, arr)

    return mutate


def _empty_demo(f: h5py.File) -> None:
    g = f["data/demo_1"]
    for name in list(g.keys()):
        if isinstance(g[name], h5py.Group):
            for k in list(g[name].keys()):
                _replace(f, f"data/demo_1/{name}/{k}", g[name][k][()][:0])
        else:
            _replace(f, f"data/demo_1/{name}", g[name][()][:0])
    g.attrs["num_samples"] = 0


D1 = "data/demo_1"
MALFORMED: dict[str, tuple[Callable[[h5py.File], None], list[str]]] = {
    "no_data_group": (lambda f: f.move("data", "stuff"), ["'data'"]),
    "no_demos": (lambda f: [f["data"].__delitem__(n) for n in list(f["data"].keys())], ["no demos"]),
    "stray_group": (lambda f: f["data"].create_group("extra"), ["extra", "demo_<int>"]),
    "missing_obs": (lambda f: f.__delitem__(f"{D1}/obs"), ["demo_1", "'obs' missing"]),
    "missing_actions": (lambda f: f.__delitem__(f"{D1}/actions"), ["demo_1", "'actions' missing"]),
    "missing_rewards": (lambda f: f.__delitem__(f"{D1}/rewards"), ["demo_1", "'rewards' missing"]),
    "missing_dones": (lambda f: f.__delitem__(f"{D1}/dones"), ["demo_1", "'dones' missing"]),
    "missing_next_obs": (lambda f: f.__delitem__(f"{D1}/next_obs"), ["demo_1", "next_obs"]),
    "missing_obs_key": (
        lambda f: (f.__delitem__(f"{D1}/obs/object"), f.__delitem__(f"{D1}/next_obs/object")),
        ["demo_1/obs", "object"],
    ),
    "missing_next_obs_key": (
        lambda f: f.__delitem__(f"{D1}/next_obs/object"),
        ["demo_1", "next_obs", "object"],
    ),
    "obs_length": (
        lambda f: _scale(f, f"{D1}/obs/robot0_eef_pos", lambda a: a[:-1]),
        ["demo_1/obs/robot0_eef_pos"],
    ),
    "next_obs_shape": (
        lambda f: _scale(f, f"{D1}/next_obs/robot0_eef_quat", lambda a: a[:, :3]),
        ["demo_1/next_obs/robot0_eef_quat"],
    ),
    "rewards_length": (lambda f: _scale(f, f"{D1}/rewards", lambda a: a[:-1]), ["demo_1/rewards"]),
    "dones_length": (lambda f: _scale(f, f"{D1}/dones", lambda a: np.append(a, 1)), ["demo_1/dones"]),
    "rewards_2d": (lambda f: _scale(f, f"{D1}/rewards", lambda a: a[:, None]), ["demo_1/rewards"]),
    "states_length": (lambda f: _scale(f, f"{D1}/states", lambda a: a[:-2]), ["demo_1/states"]),
    "actions_1d": (lambda f: _scale(f, f"{D1}/actions", lambda a: a[:, 0]), ["demo_1/actions"]),
    "actions_int": (
        lambda f: _scale(f, f"{D1}/actions", lambda a: a.astype(np.int64)),
        ["demo_1/actions", "float"],
    ),
    "action_dim_across_demos": (
        lambda f: _scale(f, f"{D1}/actions", lambda a: a[:, :6]),
        ["demo_1/actions", "demo_0"],
    ),
    "obs_dim_across_demos": (
        lambda f: (
            _scale(f, f"{D1}/obs/object", lambda a: a[:, :10]),
            _scale(f, f"{D1}/next_obs/object", lambda a: a[:, :10]),
        ),
        ["demo_1/obs/object", "(10,)", "(14,)"],
    ),
    "image_not_uint8": (
        lambda f: _scale(f, f"{D1}/obs/agentview_image", lambda a: a.astype(np.float32)),
        ["demo_1/obs/agentview_image", "uint8"],
    ),
    "nan_obs": (_set_value(f"{D1}/obs/object", (1, 3), np.nan), ["demo_1/obs/object", "nan"]),
    "inf_next_obs": (
        _set_value(f"{D1}/next_obs/robot0_eef_pos", (0, 0), np.inf),
        ["demo_1/next_obs/robot0_eef_pos", "inf"],
    ),
    "inf_actions": (_set_value(f"{D1}/actions", (2, 1), -np.inf), ["demo_1/actions", "inf"]),
    "nan_rewards": (_set_value(f"{D1}/rewards", (0,), np.nan), ["demo_1/rewards", "nan"]),
    "nan_states": (_set_value(f"{D1}/states", (0, 5), np.nan), ["demo_1/states", "nan"]),
    "action_out_of_range": (
        _set_value(f"{D1}/actions", (2, 4), 1.5),
        ["demo_1/actions", "1.5", "step 2, dim 4"],
    ),
    "action_just_out_of_range": (_set_value(f"{D1}/actions", (0, 0), -1.001), ["demo_1/actions", "-1.001"]),
    "dones_not_binary": (_set_value(f"{D1}/dones", (0,), 2), ["demo_1/dones", "0 or 1"]),
    "empty_demo": (_empty_demo, ["demo_1", "empty demo"]),
    "num_samples_wrong": (lambda f: f[D1].attrs.__setitem__("num_samples", 99), ["demo_1", "num_samples=99"]),
    "num_samples_missing": (lambda f: f[D1].attrs.__delitem__("num_samples"), ["demo_1", "num_samples"]),
    "total_wrong": (lambda f: f["data"].attrs.__setitem__("total", 1000), ["total=1000"]),
    "mask_unknown_demo": (
        lambda f: _replace(f, "mask/train", np.array([b"demo_0", b"demo_99"])),
        ["mask/train", "demo_99"],
    ),
    "env_args_malformed": (
        lambda f: f["data"].attrs.__setitem__("env_args", '{"env_name": "Lift",'),
        ["env_args", "JSON"],
    ),
    "env_args_not_object": (
        lambda f: f["data"].attrs.__setitem__("env_args", "[1, 2]"),
        ["env_args", "list"],
    ),
    "env_args_missing": (lambda f: f["data"].attrs.__delitem__("env_args"), ["env_args", "missing"]),
}


@pytest.fixture()
def good_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    path = tmp_path / "corpus.hdf5"
    write_dataset(path, [make_episode(rng, t) for t in (5, 6, 4)], ENV_ARGS, valid_fraction=0.34)
    return path


def test_good_file_is_valid(good_file: Path) -> None:
    assert validate(good_file)["total"] == 15


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_raises_named_error(good_file: Path, case: str) -> None:
    mutate, expected = MALFORMED[case]
    with h5py.File(good_file, "r+") as f:
        mutate(f)
    for reader in (validate, read_dataset, lambda p: load_transitions(p, LOW_DIM)):
        with pytest.raises(DatasetError) as err:
            reader(good_file)
        msg = str(err.value)
        assert str(good_file) in msg, msg
        for part in expected:
            assert part in msg, f"{part!r} not in {msg!r}"
    assert isinstance(err.value, ValueError)


def test_not_an_hdf5_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.hdf5"
    bad.write_text("not hdf5")
    with pytest.raises(DatasetError, match=r"x\.hdf5.*not a readable HDF5"):
        read_dataset(bad)
    with pytest.raises(DatasetError, match="no such file"):
        read_dataset(tmp_path / "missing.hdf5")


# ------------------------------------------------------------------------------------ write-side checks


@pytest.mark.parametrize(
    "case, mutate, expected",
    [
        ("range", lambda e: e.actions.__setitem__((1, 2), -2.0), "episode demo_1/actions"),
        ("nan", lambda e: e.obs["object"].__setitem__((0, 0), np.nan), "episode demo_1/obs/object"),
        ("length", lambda e: setattr(e, "rewards", e.rewards[:-1]), "episode demo_1/rewards"),
        ("next_key", lambda e: e.next_obs.pop("object"), "episode demo_1/next_obs"),
        ("action_dim", lambda e: setattr(e, "actions", e.actions[:, :3]), "episode demo_1/actions"),
    ],
)
def test_write_rejects_bad_episodes_and_writes_nothing(
    tmp_path: Path, case: str, mutate, expected: str
) -> None:
    rng = np.random.default_rng(8)
    eps = [make_episode(rng, 4, images=False) for _ in range(3)]
    mutate(eps[1])
    path = tmp_path / "w.hdf5"
    with pytest.raises(DatasetError, match=expected):
        write_dataset(path, eps, ENV_ARGS)
    assert not path.exists() and not (tmp_path / "w.hdf5.partial").exists()


def test_write_rejects_bad_arguments(tmp_path: Path) -> None:
    ep = make_episode(np.random.default_rng(9), 3, images=False)
    with pytest.raises(DatasetError, match="env_args"):
        write_dataset(tmp_path / "a.hdf5", [ep], {"bad": object()})
    with pytest.raises(DatasetError, match="no episodes"):
        write_dataset(tmp_path / "a.hdf5", [], ENV_ARGS)
    with pytest.raises(DatasetError, match="valid_fraction"):
        write_dataset(tmp_path / "a.hdf5", [ep], ENV_ARGS, valid_fraction=1.0)
    with pytest.raises(DatasetError, match="demo_5"):
        write_dataset(tmp_path / "a.hdf5", [ep], ENV_ARGS, extra_masks={"x": ["demo_5"]})


# ------------------------------------------------------------------------- older csil_lite files migrate


def _write_legacy_file(path: Path) -> dict:
    """A file as csil_lite wrote it before its own keys left env_kwargs (robosuite.make rejected them)."""
    legacy = json.loads(json.dumps(ENV_ARGS))
    legacy["env_kwargs"].update(csil_lite_task="square_d0", placement="d0")
    write_dataset(path, [make_episode(np.random.default_rng(11), 3, images=False)], ENV_ARGS)
    with h5py.File(path, "r+") as f:
        f["data"].attrs["env_args"] = json.dumps(legacy)
    return legacy


def test_legacy_env_kwargs_migrate_on_read(tmp_path: Path) -> None:
    from csil_lite.envs.robosuite import task_from_env_args

    path = tmp_path / "old.hdf5"
    _write_legacy_file(path)
    with pytest.warns(LegacyFileWarning, match=r"old\.hdf5.*csil_lite_task.*placement.*robosuite\.make"):
        ds = read_dataset(path)
    assert ds.env_args["env_kwargs"] == ENV_ARGS["env_kwargs"]  # exactly robosuite's keywords again
    assert ds.env_args["csil_lite"] == {"task": "square_d0", "placement": "d0"}
    assert task_from_env_args(ds.env_args) == ("square_d0", "d0")
    with pytest.warns(LegacyFileWarning):
        load_transitions(path, LOW_DIM)
    # Rewriting the migrated record gives a file robomimic can rebuild, and no warning on the next read.
    new = tmp_path / "new.hdf5"
    write_dataset(new, ds.episodes, ds.env_args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = read_dataset(new)
    assert again.env_args == ds.env_args
    with h5py.File(new, "r") as f:
        assert "csil_lite_task" not in json.loads(f["data"].attrs["env_args"])["env_kwargs"]


def test_writer_refuses_csil_lite_keys_in_env_kwargs(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(ENV_ARGS))
    bad["env_kwargs"]["placement"] = "d0"
    path = tmp_path / "bad.hdf5"
    with pytest.raises(DatasetError, match=r"\['placement'\].*robosuite\.make.*csil_lite"):
        write_dataset(path, [make_episode(np.random.default_rng(12), 3, images=False)], bad)
    assert not path.exists()


def test_task_from_env_args_for_files_from_elsewhere() -> None:
    from csil_lite.envs.robosuite import task_from_env_args

    assert task_from_env_args(ENV_ARGS) == ("square", None)  # a robomimic download: by env name
    assert task_from_env_args({**ENV_ARGS, "csil_lite": {"task": "square_d0", "placement": "d0"}}) == (
        "square_d0",
        "d0",
    )
    with pytest.raises(ValueError, match="'Stack'.*matches no csil_lite task"):
        task_from_env_args({"env_name": "Stack", "env_kwargs": {}})


# ------------------------------------- generated files rebuild and replay the way robomimic's tools do (sim)
#
# robomimic 0.3.0 (not a dependency) rebuilds an environment from a file with
# EnvUtils.create_env_from_metadata -> EnvRobosuite(env_name, **env_kwargs), which overrides a few keywords
# and calls robosuite.make; its reset_to({"states": s}) sets the flattened state, runs mj_forward and reads
# robosuite's observations once; get_observation keeps "object" (robosuite's object-state) and every robot0_*
# key except robot0_proprio-state. The helpers below do exactly that with robosuite alone.

GENERATOR_TASKS = ["lift", "can", "square", "square_d0"]


def _robomimic_style_env(env_args: dict):
    import robosuite

    kwargs = dict(env_args["env_kwargs"])
    kwargs.update(has_renderer=False, has_offscreen_renderer=False, ignore_done=True, use_object_obs=True,
                  use_camera_obs=False, camera_depths=False)  # EnvRobosuite's overrides for a low-dim env
    env = robosuite.make(env_args["env_name"], **kwargs)
    for name in env.observation_names:
        if "joint_pos" in name or "eef_vel" in name:
            env.modify_observable(observable_name=name, attribute="active", modifier=True)
    return env


def _robomimic_obs(env) -> dict[str, np.ndarray]:
    di = env._get_observations(force_update=True)
    out = {"object": np.array(di["object-state"])}
    out.update(
        {k: np.array(v) for k, v in di.items() if k.startswith("robot0_") and not k.endswith("proprio-state")}
    )
    return out


def _robomimic_reset_to(env, state: np.ndarray) -> dict[str, np.ndarray]:
    env.sim.set_state_from_flattened(state)
    env.sim.forward()
    return _robomimic_obs(env)


def _load_model(env, model_file: str) -> None:  # reset_to({"model": xml}) in robosuite >= 1.4
    env.reset()
    env.reset_from_xml_string(env.edit_model_xml(model_file))
    env.sim.reset()


@pytest.fixture(scope="module", params=GENERATOR_TASKS)
def generated_file(request, tmp_path_factory):
    """A small file from the generator's code path: Lift through `csil-lite demos generate` (2 successful
    demos), the slower tasks as 2 short expert recordings (20 steps each, not filtered for success) written
    with the same recorder and writer."""
    pytest.importorskip("robosuite")
    task = request.param
    path = tmp_path_factory.mktemp(task) / f"{task}.hdf5"
    if task == "lift":
        from csil_lite.data.generate import main

        argv = ["generate", "--task", "lift", "--n", "2", "--seed", "0", "--quiet", "--out", str(path)]
        assert main(argv) == 0
    else:
        from csil_lite.data.scripted import EXPERTS, record_episode
        from csil_lite.envs.robosuite import make

        env = make(task, seed=0)
        rng = np.random.default_rng(0)
        episodes = []
        for seed in (1, 2):
            env.reset(seed=seed)
            expert = EXPERTS[task](env, rng)
            episodes.append(record_episode(env, expert.act, max_steps=20)[0])
        write_dataset(path, episodes, env.env_args())
        env.close()
    return task, path


@pytest.mark.sim
def test_generated_env_args_build_with_robosuite_make_and_keep_csil_lite_facts(generated_file) -> None:
    from csil_lite.envs.robosuite import TASKS, task_from_env_args

    task, path = generated_file
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fresh file needs no migration
        ds = read_dataset(path)
    env = _robomimic_style_env(ds.env_args)  # TypeError here if env_kwargs held anything robosuite rejects
    assert type(env).__name__ == ds.env_args["env_name"] == TASKS[task].env_name
    assert not {"csil_lite_task", "placement"} & set(ds.env_args["env_kwargs"])
    assert task_from_env_args(ds.env_args) == (task, TASKS[task].placement)
    env.close()


@pytest.mark.sim
def test_generated_files_hold_robomimics_low_dim_set(generated_file) -> None:
    from csil_lite.envs.robosuite import LOW_DIM_KEYS, STATE_KEYS

    task, path = generated_file
    ds = read_dataset(path)
    env = _robomimic_style_env(ds.env_args)
    env.reset()
    reference = {k: v.shape for k, v in _robomimic_obs(env).items()}
    assert set(reference) == set(LOW_DIM_KEYS) and set(STATE_KEYS) <= set(LOW_DIM_KEYS)
    for ep in ds.episodes:
        for group in (ep.obs, ep.next_obs):
            assert set(group) == set(reference), sorted(set(group) ^ set(reference))
            for k, shape in reference.items():
                assert group[k].shape == (ep.num_samples, *shape), (task, k, group[k].shape, shape)
    env.close()


@pytest.mark.sim
def test_replaying_stored_states_reproduces_stored_observations(generated_file) -> None:
    """robomimic's reset_to on every stored state gives the stored observation (up to float32 rounding of a
    recomputation: the replay env is rebuilt from model_file), in any order.

    Can/Square: robosuite's object-to-gripper sensors read the object pose cached by the previous update, so a
    single reset_to right after a state of *another* episode (another nut placement) is off on those entries;
    a second reset_to on the same state reproduces them. Lift has no such lag: one call suffices.
    """
    task, path = generated_file
    ds = read_dataset(path)
    env = _robomimic_style_env(ds.env_args)
    lagging = task != "lift"
    for i, ep in enumerate(ds.episodes):
        _load_model(env, ep.model_file)
        if i == 0:
            order = range(ep.num_samples)
        else:  # start from the other episode's last state, then visit this one's states backwards
            _robomimic_reset_to(env, ds.episodes[0].states[-1])
            order = range(ep.num_samples - 1, -1, -1)
        for j, t in enumerate(order):
            once = _robomimic_reset_to(env, ep.states[t])
            twice = _robomimic_reset_to(env, ep.states[t])
            for k in ep.obs:
                where = f"{task} episode {i} {k} t={t}"
                np.testing.assert_allclose(twice[k], ep.obs[k][t], rtol=1e-5, atol=1e-6, err_msg=where)
                if t >= 1:
                    np.testing.assert_array_equal(ep.obs[k][t], ep.next_obs[k][t - 1], err_msg=where)
                if k != "object" or not lagging:
                    np.testing.assert_allclose(once[k], ep.obs[k][t], rtol=1e-5, atol=1e-6, err_msg=where)
            if lagging and i == 1 and j == 0:
                gap = np.abs(once["object"][:3] - ep.obs["object"][t][:3]).max()
                assert gap > 1e-3, f"{task}: the other episode's cached object pose should show, gap {gap}"
    env.close()

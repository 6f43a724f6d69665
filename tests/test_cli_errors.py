"""The command line, tried as a new user would: every bad invocation is one line on stderr, exit status 2.

Each case of the corpus runs `csil_lite.cli.main(argv)` in-process (a subprocess per case would import
JAX dozens of times) from an empty working directory holding a few fixtures, and checks: status 2, exactly
one line on stderr naming the culprit, no traceback, and no file or directory created or changed. Three
cases also run as real subprocesses, where import-time warnings would show up on stderr too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from csil_lite import cli
from csil_lite.config import AgentConfig, NetworkConfig, RunConfig, check_field_types
from csil_lite.errors import UserError

REPO = Path(__file__).resolve().parents[1]
STATE_SHAPES = {"robot0_eef_pos": (3,), "robot0_eef_quat": (4,), "robot0_gripper_qpos": (2,), "object": (10,)}


def _fake_run(d: Path, algo: str = "csil", rows: list[dict] | None = None, config: str | None = None) -> None:
    d.mkdir()
    (d / "config.json").write_text(config if config is not None else json.dumps({"agent": {"algo": algo}}))
    rows = [{"step": 0, "success_rate": 0.1}, {"step": 100, "success_rate": 0.5}] if rows is None else rows
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _demos_file(path: Path, states: bool) -> None:
    """A valid two-demo robomimic file with the robosuite low-dim keys (random values)."""
    from csil_lite.data.robomimic import Episode, write_dataset

    rng = np.random.default_rng(0)
    eps = []
    for t in (5, 6):
        full = {k: rng.normal(size=(t + 1, *s)) for k, s in STATE_SHAPES.items()}
        eps.append(Episode(obs={k: v[:-1] for k, v in full.items()},
                           next_obs={k: v[1:] for k, v in full.items()},
                           actions=rng.uniform(-1, 1, (t, 7)), rewards=np.r_[np.zeros(t - 1), 1.0],
                           dones=np.r_[np.zeros(t - 1, np.int64), 1],
                           states=rng.normal(size=(t, 9)) if states else None))
    write_dataset(path, eps, {"env_name": "Lift", "env_version": "1.5.1", "type": 1, "env_kwargs": {}})


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory with the fixtures the corpus refers to by relative path."""
    monkeypatch.chdir(tmp_path)
    _fake_run(tmp_path / "run")
    _fake_run(tmp_path / "run_badjson", config="{not json")
    _fake_run(tmp_path / "run_empty", rows=[])
    (tmp_path / "run_badline").mkdir()
    (tmp_path / "run_badline" / "config.json").write_text(json.dumps({"agent": {"algo": "bc"}}))
    (tmp_path / "run_badline" / "metrics.jsonl").write_text('{"step": 0}\n{"step": 1,\n')
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "afile").write_text("not a directory\n")
    _demos_file(tmp_path / "lift.hdf5", states=True)
    _demos_file(tmp_path / "nostates.hdf5", states=False)
    # A run directory that holds another config: it must survive the failed command untouched.
    _fake_run(tmp_path / "other_run")
    (tmp_path / "other_run" / "config.json").write_text(json.dumps({"task": "pointmass-reach", "seed": 7}))
    return tmp_path


def _snapshot(root: Path) -> dict[str, bytes | None]:
    paths = sorted(root.rglob("*"))
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in paths}


SMALL = ["--task", "pointmass-reach", "--out", "newrun"]

# (argv, substrings the one line must contain: the flag or field, the value, what is expected)
CORPUS: list[tuple[list[str], list[str]]] = [
    # --- train: flags
    (["train", "--task", "nope", "--out", "newrun"], ["--task", "nope", "pointmass-reach"]),
    (["train", "--algo", "dagger", "--out", "newrun"], ["--algo", "dagger", "csil"]),
    (["train", "--preset", "huge", "--out", "newrun"], ["--preset", "huge", "preview"]),
    (["train", "--task", "pointmass-reach"], ["--out", "required"]),
    (["train", *SMALL, "--seed", "abc"], ["--seed", "abc", "integer"]),
    (["train", *SMALL, "--env-steps", "0"], ["--env-steps", "0", ">= 1"]),
    (["train", *SMALL, "--frobnicate"], ["unrecognized", "--frobnicate"]),
    (["train", *SMALL, "--obs", "video"], ["--obs", "video", "image"]),
    (["train", *SMALL, "--obs", "image"], ["obs", "image", "toy task"]),
    (["train", "--task", "lift", "--obs", "image", "--demos", "lift.hdf5", "--num-demos", "2", "--out", "newrun"],
     ["--demos", "agentview_image", "demos render"]),
    # --- train: files
    (["train", "--task", "lift", "--demos", "missing.hdf5", "--out", "newrun"],
     ["--demos", "missing.hdf5", "no such"]),
    (["train", "--task", "lift", "--demos", "/etc/passwd", "--out", "newrun"],
     ["--demos", "/etc/passwd", "HDF5"]),
    (["train", "--task", "lift", "--demos", "emptydir", "--out", "newrun"], ["--demos", "emptydir", "file"]),
    (["train", "--task", "lift", "--out", "newrun"], ["--demos", "lift", "demos generate"]),
    (["train", "--task", "pointmass-reach", "--demos", "lift.hdf5", "--num-demos", "2", "--out", "newrun"],
     ["lift.hdf5", "pointmass-reach", "observations"]),
    (["train", "--task", "pointmass-reach", "--out", "afile"], ["--out", "afile", "directory"]),
    (["train", "--task", "pointmass-reach", "--out", "afile/sub"], ["--out", "afile", "not a directory"]),
    (["train", "--task", "pointmass-reach", "--out", "other_run"],
     ["other_run", "different config", "--no-resume"]),
    # --- train: --set (types, ranges, names, impossible sizes)
    (["train", *SMALL, "--set", "agent.beta=abc"],
     ["AgentConfig.beta", "'abc'", "number", "--set agent.beta=abc"]),
    (["train", *SMALL, "--set", "nets.features=7"], ["NetworkConfig.features", "7", "even"]),
    (["train", *SMALL, "--set", "agent.gamma=1.5"], ["AgentConfig.gamma", "1.5", "[0, 1)"]),
    (["train", *SMALL, "--set", "agent.utd=1.5"], ["AgentConfig.utd", "1.5", "integer"]),
    (["train", *SMALL, "--set", "agent.refine_reward=1"], ["AgentConfig.refine_reward", "1", "bool"]),
    (["train", *SMALL, "--set", "agent.actor_lr=NaN"], ["AgentConfig.actor_lr", "nan", "finite"]),
    (["train", *SMALL, "--set", "nets.policy=transformer"],
     ["NetworkConfig.policy", "transformer", "hetstat"]),
    (["train", *SMALL, "--set", "nets.activation=relu"], ["NetworkConfig.activation", "relu", "triangle"]),
    (["train", *SMALL, "--set", "nets.policy_hidden=[64,-1]"],
     ["NetworkConfig.policy_hidden", "-1", "positive"]),
    (["train", *SMALL, "--set", "nets.critic_hidden=[64,1.5]"],
     ["NetworkConfig.critic_hidden", "1.5", "integer"]),
    (["train", *SMALL, "--set", "agent.betta=0.1"], ["--set agent.betta=0.1", "'betta'", "'beta'"]),
    (["train", *SMALL, "--set", "bogus.x=1"], ["--set bogus.x=1", "'bogus'", "agent.FIELD"]),
    (["train", *SMALL, "--set", "agent=1"], ["--set agent=1", "group"]),
    (["train", *SMALL, "--set", "agent.algo=bc"], ["--set agent.algo=bc", "--algo"]),
    (["train", *SMALL, "--set", "budget=paper"], ["--set budget=paper", "--preset"]),
    (["train", *SMALL, "--set", "beta"], ["--set", "'beta'", "FIELD=VALUE"]),
    (["train", *SMALL, "--set", "seed=-1"], ["RunConfig.seed", "-1", ">= 0"]),
    (["train", *SMALL, "--set", "replay_capacity=10"], ["replay capacity", "10"]),
    (["train", *SMALL, "--set", "task=nope"], ["task", "nope", "pointmass-reach"]),
    # --- demos
    (["demos"], ["generate,render,info", "required"]),
    (["demos", "frobnicate"], ["frobnicate", "invalid choice"]),
    (["demos", "info", "/etc/passwd"], ["/etc/passwd", "HDF5"]),
    (["demos", "info", "missing.hdf5"], ["missing.hdf5", "no such file"]),
    (["demos", "info", "emptydir"], ["emptydir", "expected a file"]),
    (["demos", "generate", "--task", "nope", "--out", "x.hdf5"], ["--task", "nope", "lift"]),
    (["demos", "generate", "--task", "lift", "--n", "0", "--out", "x.hdf5"], ["--n", "0", ">= 1"]),
    (["demos", "generate", "--task", "lift", "--noise", "-0.1", "--out", "x.hdf5"],
     ["--noise", "-0.1", ">= 0"]),
    (["demos", "generate", "--task", "lift", "--images", "--image-size", "0", "--out", "x.hdf5"],
     ["--image-size", "0", ">= 1"]),
    (["demos", "generate", "--task", "lift", "--method", "dagger", "--out", "x.hdf5"],
     ["--method", "dagger"]),
    (["demos", "generate", "--task", "lift", "--out", "nodir/x.hdf5"], ["--out", "nodir", "does not exist"]),
    (["demos", "generate", "--task", "lift", "--out", "emptydir"], ["--out", "emptydir", "directory"]),
    (["demos", "render", "missing.hdf5", "--out", "y.hdf5"], ["missing.hdf5", "no such file"]),
    (["demos", "render", "nostates.hdf5", "--out", "y.hdf5"], ["nostates.hdf5", "states"]),
    (["demos", "generate", "--task", "lift", "--out", "/proc/x.hdf5"], ["--out", "/proc/x.hdf5", "cannot create"]),
    (["demos", "render", "lift.hdf5", "--out", "lift.hdf5"], ["--out", "lift.hdf5", "input file", "--in-place"]),
    (["train", "--task", "lift", "--demos", "lift.hdf5", "--num-demos", "50", "--out", "newrun"],
     ["lift.hdf5", "holds 2 demos", "50"]),
    # --- base policies (csil_lite.base.cli): serve, lbm, evaluate, demos export-lerobot
    (["serve"], ["--checkpoint", "required"]),
    (["serve", "--checkpoint", "missing"], ["--checkpoint", "missing", "no such directory"]),
    (["serve", "--checkpoint", "emptydir"], ["emptydir", "standin.json", "lbm train"]),
    (["serve", "--checkpoint", "emptydir", "--port", "-1"], ["--port", "-1", ">= 0"]),
    (["lbm"], ["{train}", "required"]),
    (["lbm", "train", "--task", "nope", "--out", "newrun"], ["--task", "nope", "pointmass-reach"]),
    (["lbm", "train", *SMALL, "--steps", "0"], ["--steps", "0", ">= 1"]),
    (["lbm", "train", "--task", "lift", "--demos", "missing.hdf5", "--out", "newrun"],
     ["--demos", "missing.hdf5", "no such"]),
    (["lbm", "train", "--task", "pointmass-reach", "--out", "afile"], ["--out", "afile", "directory"]),
    (["evaluate", "--task", "pointmass-reach"], ["--base", "required"]),
    (["evaluate", "--base", "nohost", "--task", "pointmass-reach"], ["nohost", "HOST:PORT"]),
    (["evaluate", "--base", "emptydir", "--task", "pointmass-reach"], ["emptydir", "standin.json"]),
    (["evaluate", "--base", "127.0.0.1:1", "--task", "pointmass-reach", "--wait", "0"],
     ["127.0.0.1:1", "csil-lite serve"]),
    (["demos", "export-lerobot", "missing.hdf5", "--out", "ds"], ["missing.hdf5", "no such file"]),
    (["demos", "export-lerobot", "lift.hdf5", "--out", "afile"], ["--out", "afile", "directory"]),
    (["demos", "export-lerobot", "lift.hdf5", "--out", "ds", "--images", "video"], ["--images", "video"]),
    # --- plot
    (["plot", "/nonexistent"], ["/nonexistent", "does not exist"]),
    (["plot", "afile"], ["afile", "not a directory"]),
    (["plot", "emptydir"], ["emptydir", "config.json", "run directory"]),
    (["plot", "run_badjson"], ["run_badjson", "config.json"]),
    (["plot", "run_badline"], ["run_badline", "metrics.jsonl", "line 2"]),
    (["plot", "run_empty"], ["run_empty", "no evaluations"]),
    (["plot", "run", "--metric", "nope"], ["'nope'", "metrics.jsonl", "success_rate"]),
    (["plot", "run", "--out", "nodir/fig.png"], ["--out", "nodir", "does not exist"]),
    (["plot", "run", "--out", "fig.xyz"], ["--out", "fig.xyz", ".png"]),
    (["plot", "run", "--out", "emptydir"], ["--out", "emptydir", "directory"]),
    # --- report (the paper's protocol table) and the base flags of train / evaluate
    (["report", "emptydir"], ["emptydir", "final_eval.json", "final_eval_repeats"]),
    (["report", "run", "--table", "nodir/t.md"], ["--table", "nodir", "does not exist"]),
    (["train", "--compose", "residual", "--out", "newrun"], ["--compose", "--base"]),
    (["train", "--task", "pointmass-reach", "--base", "emptydir", "--out", "newrun"], ["emptydir", "standin.json"]),
    (["evaluate", "--base", "emptydir", "--task", "pointmass-reach", "--out", "afile"], ["--out", "afile"]),
    # --- sweep
    (["sweep", "--algos", "csil", "--out", "sweep"], ["no tasks, seeds", "--tasks"]),
    (["sweep", "missing.toml", "--out", "sweep"], ["missing.toml", "does not exist"]),
    (["sweep", "--algos", "nope", "--tasks", "pointmass-reach", "--seeds", "0", "--out", "sweep"],
     ["nope_pointmass-reach_0", "unknown algo"]),
    (["sweep", "--algos", "csil", "--tasks", "pointmass-reach", "--seeds", "0", "--set", "agent.nope=1",
      "--out", "sweep"], ["agent.nope", "AgentConfig"]),
    (["sweep", "--algos", "csil", "--tasks", "pointmass-reach", "--seeds", "0", "--out", "afile"],
     ["--out", "afile", "directory"]),
    # --- top level
    (["nope"], ["'nope'", "train, plot, demos"]),
]


def test_corpus_is_large_and_covers_every_command():
    assert len(CORPUS) >= 20
    assert {argv[0] for argv, _ in CORPUS} >= set(cli.COMMANDS)
    demos = {argv[1] for argv, _ in CORPUS if argv[0] == "demos" and len(argv) > 1}
    assert demos >= {"generate", "render", "info"}


@pytest.mark.parametrize("argv,culprit", CORPUS, ids=[" ".join(a)[:60] for a, _ in CORPUS])
def test_bad_invocation_is_one_line_status_2_and_leaves_nothing(workdir, capsys, argv, culprit):
    before = _snapshot(workdir)
    status = cli.main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2, (status, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err and not out.strip()
    assert lines[0].startswith("csil-lite"), lines[0]
    for part in culprit:
        assert part in lines[0], (part, lines[0])
    assert _snapshot(workdir) == before, "the failed command created or changed files"


def test_debug_shows_the_traceback(workdir):
    with pytest.raises(UserError, match="AgentConfig.beta"):
        cli.main(["train", *SMALL, "--set", "agent.beta=abc", "--debug"])
    assert not (workdir / "newrun").exists()


def test_programming_errors_are_not_swallowed(monkeypatch):
    """Only UserError is reported in one line: a bug (here a KeyError raised by a command) propagates."""
    import csil_lite.plotting as plotting

    def broken(*a, **k):
        raise KeyError("bug")

    monkeypatch.setattr(plotting, "curves_by_algo", broken)
    with pytest.raises(KeyError):
        cli.main(["plot", "somewhere"])


def test_good_set_still_works(workdir, capsys):
    """Valid overrides reach the config with their types; a good plot command writes its figure."""
    from csil_lite.train import build_parser, config_from_args

    args = build_parser().parse_args(["--task", "pointmass-reach", "--out", "r", "--set", "agent.beta=0.5",
                                      "--set", "nets.features=32", "--set", "nets.policy_hidden=[32,32]",
                                      "--set", "agent.reward_shift=bound",
                                      "--set", "agent.refine_reward=false",
                                      "--set", "env_steps=2000", "--set", "agent.actor_lr=1"])
    cfg = config_from_args(args)
    assert cfg.agent.beta == 0.5 and cfg.nets.features == 32 and cfg.nets.policy_hidden == (32, 32)
    assert cfg.agent.reward_shift == "bound" and cfg.agent.refine_reward is False and cfg.env_steps == 2000
    assert cfg.agent.actor_lr == 1  # an int is a number
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # still round-trips through JSON
    assert not (workdir / "r").exists()  # parsing creates nothing

    assert cli.main(["plot", "run", "--out", "fig.png"]) == 0
    assert (workdir / "fig.png").stat().st_size > 0 and capsys.readouterr().err == ""


@pytest.mark.parametrize("obj,field,value,expected", [
    (AgentConfig, "beta", "abc", "a finite number"),
    (AgentConfig, "beta", float("inf"), "a finite number"),
    (AgentConfig, "n_demo", True, "an integer"),
    (AgentConfig, "refine_reward", 0, "a bool"),
    (AgentConfig, "reward_shift", [1.0], "a finite number or a string"),
    (NetworkConfig, "policy", "gru", "one of 'hetstat', 'mlp'"),
    (NetworkConfig, "encoder", "cnn", "one of 'flatten'"),
    (RunConfig, "budget", "huge", "one of 'preview', 'reference', 'paper'"),
    (NetworkConfig, "policy_hidden", [64, 64], "a tuple of integers"),
    (NetworkConfig, "critic_hidden", (64, "a"), "a tuple of integers"),
    (RunConfig, "demos_path", 3, "a string or null"),
    (RunConfig, "agent", {}, "AgentConfig"),
])
def test_configs_check_types_at_construction(obj, field, value, expected):
    with pytest.raises(UserError) as info:
        obj(**{field: value})
    msg = str(info.value)
    assert msg.startswith(f"{obj.__name__}.{field} = {value!r}") and expected in msg, msg


def test_budget_is_one_field_and_a_config_without_it_still_reads():
    """`preset(budget, algo=...)` records the budget in `RunConfig.budget` (and config.json); a config.json
    written before `budget` and `nets.encoder` existed reads with their defaults."""
    from csil_lite.configs import preset

    cfg = preset("preview", algo="csilpp", seed=2)
    assert (cfg.budget, cfg.algo, cfg.nets.encoder) == ("preview", "csilpp", "flatten")
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    old = json.loads(json.dumps(cfg.to_dict()))
    del old["budget"], old["nets"]["encoder"]
    read = RunConfig.from_dict(old)
    assert (read.budget, read.nets.encoder) == ("reference", "flatten")
    assert RunConfig.from_dict({**old, "budget": "preview"}) == cfg  # nothing else differs
    with pytest.raises(ValueError, match=r"unknown budget 'smoke'; choose from \('preview', 'reference', 'paper'\)"):
        preset("smoke")
    with pytest.raises(ValueError, match=r"unknown algo 'ppo'; choose from \('csil', "):
        preset("preview", algo="ppo")


def test_type_check_accepts_what_the_annotations_allow():
    for cfg in (AgentConfig(beta=1, reward_shift=-2), AgentConfig(reward_shift="demos"),
                NetworkConfig(policy="mlp", features=7), RunConfig(demos_path=None, seed=np.int64(3))):
        check_field_types(cfg)
    with pytest.raises(ValueError):  # UserError stays a ValueError for library callers
        AgentConfig(beta="abc")


def test_activation_literal_matches_the_library():
    import typing

    from csil_lite.nets.layers import PERIODIC_ACTIVATIONS

    allowed = typing.get_args(typing.get_type_hints(NetworkConfig)["activation"])
    assert sorted(allowed) == sorted(PERIODIC_ACTIVATIONS)


@pytest.mark.parametrize("argv,culprit", [
    (["train", "--task", "nope", "--out", "newrun"], "--task"),
    (["train", "--out", "newrun", "--set", "nets.features=7"], "NetworkConfig.features"),
    (["plot", "/nonexistent"], "/nonexistent"),
])
def test_real_subprocess_prints_one_line(tmp_path, argv, culprit):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-m", "csil_lite.cli", *argv], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and culprit in lines[0] and "Traceback" not in res.stderr, res.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.sim
def test_render_names_an_unknown_camera_before_rendering(workdir, capsys):
    """The camera check needs the scene (a robosuite env, a few seconds), so it is not in the fast corpus."""
    import csil_lite.envs.robosuite as rs  # installs its log filter before robosuite is first imported

    try:
        rs._import_robosuite()
    except ImportError:
        pytest.skip("robosuite is not installed")
    before = _snapshot(workdir)
    assert cli.main(["demos", "render", "lift.hdf5", "--out", "y.hdf5", "--cameras", "agentview", "bogus"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--cameras" in lines[0] and "bogus" in lines[0] and "agentview" in lines[0], lines
    assert _snapshot(workdir) == before

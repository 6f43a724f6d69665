"""Every `paper` preset runs end to end on a CPU with all its sizes and a handful of steps (`configs.smoke`): one
run per algorithm x task family (the toy point mass; a robosuite task from scripted robomimic demonstrations) x
observation kind (states for every algorithm; from pixels, CSIL++, the paper's image method, with its per-camera
ResNet at 84 x 84). What a GPU run of the paper's Table II would build, compile and execute, minus the steps."""

import dataclasses
import json

import numpy as np

import pytest

from csil_lite.configs import ALGORITHMS, SMOKE_STEPS, preset, smoke
from csil_lite.loop import read_metrics, train

FAMILIES = {"toy": "pointmass-reach", "robosuite": "lift"}
OBS_KINDS = ("state",)


def test_smoke_keeps_every_size_and_shrinks_only_steps():
    for algo in ALGORITHMS:
        paper = preset("paper", algo=algo)
        s = smoke(paper)
        assert s.nets == paper.nets and s.agent == paper.agent and s.replay_capacity == paper.replay_capacity
        assert s.budget == "paper" and s.env_steps <= 2 * max(SMOKE_STEPS["learning_starts"], paper.agent.n_online)
        changed = {f.name for f in dataclasses.fields(paper) if getattr(s, f.name) != getattr(paper, f.name)}
        assert changed <= set(SMOKE_STEPS) | {"final_eval_repeats"}, changed


@pytest.fixture(scope="module")
def lift_demos(tmp_path_factory):
    from csil_lite.data.robomimic import write_dataset
    from csil_lite.data.scripted import generate_episodes
    from csil_lite.envs.robosuite import make

    env = make("lift", seed=0, obs="state")
    episodes = generate_episodes("lift", SMOKE_STEPS["num_demos"], seed=0, env=env, progress=False)
    path = tmp_path_factory.mktemp("demos") / "lift_smoke.hdf5"
    write_dataset(path, episodes, env.env_args())
    env.close()
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("obs_kind", OBS_KINDS)
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_paper_preset_runs_its_smoke_budget(algo, family, obs_kind, tmp_path, request):
    task = FAMILIES[family]
    demos = request.getfixturevalue("lift_demos") if family == "robosuite" else None
    cfg = smoke(preset("paper", algo=algo, task=task, demos_path=demos))
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["completed"] and summary["env_steps"] == cfg.env_steps
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == list(range(0, cfg.env_steps + 1, cfg.eval_every))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["nets"]["features"] == cfg.nets.features and saved["budget"] == "paper"


@pytest.mark.slow
def test_paper_preset_runs_from_pixels(tmp_path):
    """CSIL++ at its `paper` preset from both cameras at 84 x 84 (`configs.from_pixels`: the per-camera ResNet,
    frozen after BC and encoded once per update) through BC, SARSA, a few online updates and two evaluations.
    Fewer steps than the state smoke (a BC step on 84 px frames costs seconds on a CPU); every size is the paper's."""
    from csil_lite.pixels import make_image_demos

    demos = make_image_demos("lift", SMOKE_STEPS["num_demos"], tmp_path / "lift_img.hdf5", seed=0, image_size=84)
    paper = preset("paper", algo="csilpp", task="lift", obs="image", demos_path=str(demos))
    cfg = smoke(paper)
    start = cfg.learning_starts
    cfg = dataclasses.replace(cfg, bc_steps=2, critic_pretrain_steps=2, env_steps=start + 4, eval_every=start + 4)
    assert (cfg.nets, cfg.agent, cfg.image_size, cfg.obs) == (paper.nets, paper.agent, 84, "image")
    assert cfg.nets.encoder == "resnet_per_camera"
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["completed"] and summary["updates"] == 4 + 1  # updates from learning_starts to the end
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [0, start + 4] and np.isfinite(rows[-1]["critic_loss"])

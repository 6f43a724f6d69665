"""Every `paper` preset runs end to end on a CPU with all its sizes and a handful of steps (`configs.smoke`): one
run per algorithm x task family (the toy point mass; a robosuite task from scripted robomimic demonstrations) x
observation kind (states; image observations do not exist yet). What a GPU run of the paper's Table II would build,
compile and execute, minus the steps."""

import dataclasses
import json

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

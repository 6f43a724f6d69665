"""The paper's evaluation protocol (issue 22): median [25th, 75th] over the concatenated final evaluations of
every seed, on hand-made records with known answers; the Table-I-style markdown; the CLI over run directories;
the best parameters kept across a resume; a base alone recorded for the same table."""

import json
from pathlib import Path

import numpy as np
import pytest

from csil_lite.errors import UserError
from csil_lite.report import main as report_main
from csil_lite.report import protocol_html, protocol_summary, protocol_table, read_final_eval

STANDIN = str(Path(__file__).resolve().parents[1] / "book" / "_artefacts" / "base" / "pointmass-reach_1000")


def rec(method, task, seed, rates):
    return {"method": method, "task": task, "seed": seed, "success_rates": rates}


def test_median_and_quartiles_over_the_concatenated_evaluations():
    records = [rec("csilpp ensemble", "lift", 0, [0.1, 0.2, 0.3, 0.4, 0.5]),
               rec("csilpp ensemble", "lift", 1, [1.0, 0.9, 0.8, 0.7, 0.6]),
               rec("base", "lift", 0, [0.5] * 5)]
    s = protocol_summary(records)
    c = s[("csilpp ensemble", "lift")]
    # ten values 0.1 .. 1.0: median (0.5 + 0.6) / 2; quartiles by linear interpolation at 2.25 and 6.75
    assert c["median"] == pytest.approx(0.55) and c["q25"] == pytest.approx(0.325)
    assert c["q75"] == pytest.approx(0.775)
    assert (c["seeds"], c["evaluations"]) == (2, 10)
    assert s[("base", "lift")] == {"median": 0.5, "q25": 0.5, "q75": 0.5, "seeds": 1, "evaluations": 5}
    # the per-seed medians would give another answer (0.3 and 0.8 -> 0.55 too, but quartiles 0.425 / 0.675)
    assert c["q25"] != pytest.approx(np.percentile([0.3, 0.8], 25))
    with pytest.raises(ValueError, match="twice"):
        protocol_summary(records + [rec("base", "lift", 0, [0.4])])


def test_table_marks_the_best_median_of_each_task_and_gaps():
    s = protocol_summary([rec("base", "lift", 0, [0.2, 0.4]), rec("csilpp ensemble", "lift", 0, [0.9, 0.9]),
                          rec("base", "can", 0, [0.6, 0.6])])
    table = protocol_table(s, methods=["base", "csilpp ensemble"], tasks=["lift", "can"])
    lines = table.splitlines()
    assert lines[0] == "| method | lift | can |"
    assert lines[2] == "| base | 0.30 [0.25, 0.35] | **0.60 [0.60, 0.60]** |"
    assert lines[3] == "| csilpp ensemble | **0.90 [0.90, 0.90]** | - |"
    html = protocol_html(s, methods=["base", "csilpp ensemble"], tasks=["lift", "can"])
    assert "<tr><td>base</td><td>0.30 [0.25, 0.35]</td><td><b>0.60 [0.60, 0.60]</b></td></tr>" in html
    assert html.count("<tr>") == 3 and "**" not in html


def test_report_cli_reads_run_directories(tmp_path, capsys):
    for i, rates in enumerate([[0.2, 0.4], [0.6, 0.8]]):
        d = tmp_path / f"run{i}"
        d.mkdir()
        (d / "final_eval.json").write_text(json.dumps(rec("xqc_od residual", "reach", i, rates)))
    assert report_main([str(tmp_path / "run0"), str(tmp_path / "run1"), "--table", str(tmp_path / "t.md"),
                        "--figure", str(tmp_path / "t.png")]) == 0
    assert "| xqc_od residual | **0.50 [0.35, 0.65]** |" in (tmp_path / "t.md").read_text()
    assert (tmp_path / "t.png").stat().st_size > 1000
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="final_eval_repeats"):
        read_final_eval(tmp_path / "empty")


@pytest.mark.slow
def test_the_best_parameters_and_their_final_evaluation_survive_a_resume(tmp_path):
    from csil_lite.configs import preset
    from csil_lite.loop import read_metrics, train

    cfg = preset("preview", algo="csil", task="pointmass-reach", num_demos=2, bc_steps=100,
                 critic_pretrain_steps=50, env_steps=360, learning_starts=60, eval_every=120, eval_episodes=4,
                 checkpoint_every=60, replay_capacity=1000, final_eval_repeats=3,
                 agent=dict(n_demo=16, n_online=16, actor_lr=3e-3),
                 nets=dict(policy_hidden=(16,), features=16, critic_hidden=(16,)))
    whole = train(cfg, tmp_path / "whole", progress=False)
    part = train(cfg, tmp_path / "part", progress=False, stop_after=200)
    assert not part["completed"] and not (tmp_path / "part" / "final_eval.json").exists()
    again = train(cfg, tmp_path / "part", progress=False)
    a, b = read_final_eval(tmp_path / "whole"), read_final_eval(tmp_path / "part")
    assert a == b and len(a["success_rates"]) == 3 and a["method"] == "csil"
    rates = [r["success_rate"] for r in read_metrics(tmp_path / "whole")]
    assert a["best_step"] == read_metrics(tmp_path / "whole")[int(np.argmax(rates))]["step"]  # first best
    assert a["best_success_rate"] == max(rates) == whole["best_success_rate"] == again["best_success_rate"]


@pytest.mark.slow
def test_a_base_alone_gives_a_record_for_the_same_table(tmp_path):
    from csil_lite.cli import main

    assert main(["evaluate", "--base", STANDIN, "--task", "pointmass-reach", "--episodes", "3", "--repeats", "2",
                 "--execute-steps", "5", "--out", str(tmp_path / "base")]) == 0
    r = read_final_eval(tmp_path / "base")
    assert r["method"] == "base" and len(r["success_rates"]) == 2
    assert all(0.0 <= v <= 1.0 for v in r["success_rates"])
    assert ("base", "pointmass-reach") in protocol_summary([r])


def test_load_runs_reads_curves_and_drops(tmp_path):
    from csil_lite.report import curves_figure, initial_drops, load_runs

    with pytest.raises(UserError, match="no finished runs"):
        load_runs(tmp_path)
    curves = {0: [0.9, 0.5, 0.8], 1: [1.0, 0.9, 1.0]}
    for seed, rates in curves.items():
        d = tmp_path / f"xqc_od_ensemble_{seed}"
        d.mkdir()
        (d / "final_eval.json").write_text(json.dumps(rec("xqc_od ensemble", "can", seed, [0.9] * 5)))
        (d / "metrics.jsonl").write_text("".join(json.dumps({"step": 500 * i, "success_rate": r}) + "\n"
                                                 for i, r in enumerate(rates)))
        (d / "config.json").write_text(json.dumps({"learning_starts": 500}))
    (tmp_path / "base_0").mkdir()
    (tmp_path / "base_0" / "final_eval.json").write_text(json.dumps(rec("base", "can", 0, [0.6] * 5)))
    runs = load_runs(tmp_path)
    steps, values = runs.curves["xqc_od ensemble"]
    np.testing.assert_array_equal(steps, [0, 500, 1000])
    np.testing.assert_allclose(values, [curves[0], curves[1]])
    assert set(runs.curves) == {"xqc_od ensemble"} and runs.task == "can" and runs.learning_starts == 500
    assert runs.cell("base")["median"] == 0.6 and runs.settings == {}
    np.testing.assert_allclose(initial_drops(runs)["xqc_od ensemble"], [-0.4, -0.1])
    ax = curves_figure(runs)
    assert len(ax.get_lines()) == 3  # the median curve, the base's line, where updates start
    # runs of one method evaluated at different steps cannot share a curve
    (tmp_path / "xqc_od_ensemble_1" / "metrics.jsonl").write_text(json.dumps({"step": 0, "success_rate": 1.0}))
    with pytest.raises(ValueError, match="different steps"):
        load_runs(tmp_path)


def fake_run(folder, algo, task, seed, curve, every=1000):
    """A run directory with a config.json and a metrics.jsonl of the given success curve (no training)."""
    from csil_lite.configs import preset

    folder.mkdir(parents=True)
    cfg = preset("preview", algo=algo, task=task, seed=seed)
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"step": i * every, "success_rate": v}) + "\n"
                                                  for i, v in enumerate(curve)))
    return folder


def test_steps_to_threshold_per_method_with_never_reached_seeds(tmp_path):
    from csil_lite.report import threshold_summary, threshold_table

    runs = [fake_run(tmp_path / "a0", "csilpp", "pointmass-reach", 0, [0.1, 0.9, 0.9]),
            fake_run(tmp_path / "a1", "csilpp", "pointmass-reach", 1, [0.1, 0.5, 0.95]),
            fake_run(tmp_path / "a2", "csilpp", "pointmass-reach", 2, [0.1, 0.2, 0.3]),
            fake_run(tmp_path / "b0", "csil", "pointmass-reach", 0, [0.1, 0.2, 0.3, 0.9])]
    s = threshold_summary(runs, 0.85)
    c = s[("csilpp", "pointmass-reach")]
    assert c["steps"] == [1000, 2000, None] and c["reached"] == 2 and c["seeds"] == 3
    assert c["median"] == 2000 and c["q25"] == 1000 and c["q75"] == np.inf
    assert s[("csil", "pointmass-reach")]["median"] == 3000
    table = threshold_table(s, 0.85)
    assert "| csilpp | **2k [1k, never] (2/3)** |" in table and "| csil | 3k [3k, 3k] (1/1) |" in table
    # a 2-evaluation trailing mean: seed 0 reaches it one evaluation later (0.5 at 1k, 0.9 at 2k)
    assert threshold_summary(runs[:1], 0.85, smooth=2)[("csilpp", "pointmass-reach")]["steps"] == [2000]
    with pytest.raises(ValueError, match="twice"):
        threshold_summary(runs + runs[:1], 0.85)


def test_report_cli_reads_a_sweeps_runs_and_its_threshold(tmp_path, capsys):
    sweep = tmp_path / "s.toml"
    sweep.write_text('[sweep]\nalgos = ["csil", "csilpp"]\ntasks = ["pointmass-reach"]\nseeds = [0]\n'
                     '[report]\nthreshold = 0.5\nsmooth = 1\n')
    fake_run(tmp_path / "out" / "csil_pointmass-reach_0", "csil", "pointmass-reach", 0, [0.1, 0.6])
    assert report_main(["--sweep", str(sweep), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "1 of the sweep's 2 runs have evaluations" in out and "| csil | **1k [1k, 1k] (1/1)** |" in out
    with pytest.raises(UserError, match="none of"):
        report_main(["--sweep", str(sweep), str(tmp_path / "nothing")])
    bad = tmp_path / "bad.toml"
    bad.write_text('[sweep]\nalgos = ["csil"]\n[report]\nthreshhold = 0.5\n')
    with pytest.raises(UserError, match="threshhold"):
        report_main(["--sweep", str(bad), str(tmp_path / "out")])


def test_report_cli_names_a_sweeps_methods_by_its_arms(tmp_path, capsys):
    """Two arms of one algorithm are two methods (by the algorithm alone they would be one, a seed counted twice)."""
    sweep = tmp_path / "s.toml"
    sweep.write_text('[sweep]\ntasks = ["pointmass-reach"]\nseeds = [0]\nname = "{arm}_{seed}"\n'
                     '[arms.slow]\nalgo = "csil"\n[arms.fast]\nalgo = "csil"\n"agent.beta" = 0.5\n'
                     '[report]\nthreshold = 0.5\n')
    fake_run(tmp_path / "out" / "slow_0", "csil", "pointmass-reach", 0, [0.1, 0.2, 0.6])
    fake_run(tmp_path / "out" / "fast_0", "csil", "pointmass-reach", 0, [0.1, 0.6, 0.6])
    assert report_main(["--sweep", str(sweep), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| slow | 2k [2k, 2k] (1/1) |" in out and "| fast | **1k [1k, 1k] (1/1)** |" in out

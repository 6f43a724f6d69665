"""Chapter 6's pre-registered test (scripts/ch06_preregistered.py): its settings build valid configurations for
every arm, the pilot's rule does what its docstring says, and its report reads stored runs."""

import importlib.util
import json
from pathlib import Path

import pytest

from csil_lite.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("ch06_preregistered", ROOT / "scripts" / "ch06_preregistered.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_fix_every_arm_as_a_valid_config(script):
    s = script.settings("lift")
    assert s["task"] == "lift" and s["seeds"] == [0, 1, 2] and s["env_steps"] == 25_000
    assert set(s["primary_arms"]) <= set(s["arms"]) and s["primary_arms"][0] == "csil"
    json.dumps(s)  # plain data: it is written to settings.json
    for arm, d in s["arms"].items():
        cfg = RunConfig.from_dict(d)
        assert cfg == script.config("lift", arm, 0, script.demos_file("lift")), arm
        assert (cfg.env_steps, cfg.eval_every, cfg.eval_episodes) == (25_000, 2_500, 50)
    paper = RunConfig.from_dict(s["arms"]["csilpp_paper_options"])
    assert paper.agent.return_norm == "running_std" and paper.nets.critic_v_min == -8.0
    assert paper.agent.critic_lr_final == 3e-5 and paper.nets.policy_layer_norm and paper.agent.tau == 0.005
    assert RunConfig.from_dict(s["arms"]["csilpp"]) == script.config("lift", "csilpp", 0, "lift_scripted_10.hdf5")


def test_pilot_rule_goes_on_only_below_the_threshold_and_rising(script):
    steps = [0, 2500, 5000, 7500, 10000]
    assert script.pilot_verdict(steps, [0.3, 0.4, 0.5, 0.6, 0.7])[0]
    assert not script.pilot_verdict(steps, [0.3, 0.5, 0.7, 0.8, 0.85])[0]  # at the threshold already
    assert not script.pilot_verdict(steps, [0.3, 0.5, 0.7, 0.72, 0.7])[0]  # levelled off


def _store(folder: Path, name: str, success, every: int = 2_500) -> None:
    d = folder / name
    d.mkdir(parents=True)
    (d / "metrics.jsonl").write_text("".join(json.dumps({"step": i * every, "success_rate": v}) + "\n"
                                             for i, v in enumerate(success)))
    (d / "summary.json").write_text("{}")


def test_paired_test_reads_the_settings_and_the_finished_runs(script, tmp_path):
    """csil_lite.report.paired_test (what the script's --report and chapter 6 read): AUC per run, the paired
    difference over common seeds only, the smoothed steps to the threshold (equal to it counts), what is missing."""
    import numpy as np

    from csil_lite.errors import UserError
    from csil_lite.evaluation import success_auc
    from csil_lite.report import paired_html, paired_table, paired_test

    (tmp_path / "settings.json").write_text(json.dumps(script.settings("lift")))
    flat, ramp = [0.5] * 11, [0.5, 0.6, 0.7, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    _store(tmp_path, "csil_0", flat)
    _store(tmp_path, "csil_1", flat)
    _store(tmp_path, "csilpp_0", ramp)
    _store(tmp_path, "csilpp_2", ramp)  # no csil seed 2: not paired
    (tmp_path / "csilpp_1").mkdir()  # started, not finished: missing
    t = paired_test(tmp_path)
    steps = np.arange(11) * 2_500
    assert t.auc[("csil", 0)] == pytest.approx(0.5)
    assert t.auc[("csilpp", 0)] == pytest.approx(success_auc(steps, ramp))
    seeds, d = t.paired["csilpp"]
    assert seeds == [0] and d == pytest.approx([success_auc(steps, ramp) - 0.5])
    assert t.paired["csilpp_paper_options"][0] == []
    # mean(0.7, 0.9, 0.8) is 0.8000000000000002 or 0.7999999999999999 by rounding: it reaches 0.8 either way
    assert t.reach[("csilpp", 0)] == 10_000 and t.reach[("csil", 0)] is None
    assert ("csilpp", 1) in t.missing and ("csil", 2) in t.missing and not t.complete()
    table = paired_table(t)
    assert "| csil | 0.500 (>25k) | 0.500 (>25k) | - |" in table
    assert "paired AUC csilpp - csil over seeds [0]" in table and "no common seed finished yet" in table
    html = paired_html(t)  # what the chapter shows: the same cells, escaped
    assert "<tr><td>csil</td><td>0.500 (&gt;25k)</td><td>0.500 (&gt;25k)</td><td>-</td></tr>" in html
    assert "csilpp_paper_options" not in html.split("</table>")[0]  # an arm with no finished run has no row
    _store(tmp_path, "csil_2", flat[:5])  # finished early: not the settings' run
    with pytest.raises(ValueError, match="finished at 10,000"):
        paired_test(tmp_path)
    with pytest.raises(UserError, match="settings.json"):
        paired_test(tmp_path / "csil_0")

"""Chapter 7's stored CSIL vs CSIL++ Lift cell (§7.5), run on small fake run directories.

The cell is taken from the chapter source and executed with the names the chapter defines before it, so the
test checks the chapter's own code: the glued numbers are the medians of what is stored, and the asserts that
back the prose fail when the stored runs do not match it. No training runs here.
"""

import json
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from csil_lite.config import RunConfig  # noqa: E402
from csil_lite.configs import preset  # noqa: E402
from csil_lite.loop import read_metrics  # noqa: E402
from csil_lite.plotting import curves_by_algo, plot_curves  # noqa: E402

CHAPTER = Path(__file__).resolve().parents[1] / "book" / "07_manipulation.md"
LIFT = dict(task="lift", demos_path="lift_scripted_10.hdf5", num_demos=10, learning_starts=500)


def the_cell() -> str:
    cells = re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", CHAPTER.read_text(), flags=re.S)
    (cell,) = [c for c in cells if "fig-ch7-csilpp-lift" in c]
    return cell.split("---\n", 2)[2]  # drop the cell's metadata block


def write_runs(root: Path, success: dict[str, list[list[float]]], **overrides) -> None:
    """Run directories root/ch06/lift/{algo}_{seed} with the preview preset's config and the given curves."""
    for algo, per_seed in success.items():
        for seed, curve in enumerate(per_seed):
            d = root / "ch06" / "lift" / f"{algo}_{seed}"
            d.mkdir(parents=True)
            cfg = preset("preview", algo=algo, seed=seed, env_steps=2_000, eval_every=1_000, eval_episodes=20,
                         **{**LIFT, **overrides.get(algo, {})})
            (d / "config.json").write_text(json.dumps(cfg.to_dict()))
            rows = [{"step": 1_000 * i, "success_rate": s} for i, s in enumerate(curve)]
            (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def run_cell(root: Path) -> dict:
    glued: dict = {}
    ns = {
        "PREVIEW": True, "json": json, "np": np, "plt": plt, "artefacts_dir": lambda: root,
        "RunConfig": RunConfig, "preset": preset,
        "curves_by_algo": curves_by_algo, "plot_curves": plot_curves, "read_metrics": read_metrics,
        "glue": lambda key, value, display=False: glued.__setitem__(key, value),
        "cfg_csil": preset("preview", algo="csil", seed=0, env_steps=1_000, eval_every=1_000, eval_episodes=5,
                           **LIFT),
        "rows": [{"step": 0, "success_rate": 0.4}, {"step": 1_000, "success_rate": 0.6}],
    }
    try:
        exec(compile(the_cell(), str(CHAPTER), "exec"), ns)
    finally:
        plt.close("all")
    return glued


CSIL = [[0.8, 0.7, 0.9], [0.5, 0.4, 0.6], [0.9, 0.9, 0.95]]
CSILPP = [[0.8, 0.9, 1.0], [0.5, 0.7, 0.8], [0.9, 0.6, 0.75]]


def test_glued_numbers_are_the_stored_medians(tmp_path):
    write_runs(tmp_path, {"csil": CSIL, "csilpp": CSILPP})
    g = run_cell(tmp_path)
    for algo, runs in (("csil", CSIL), ("csilpp", CSILPP)):
        med = np.median(np.array(runs), axis=0)
        assert g[f"ch7_{algo}_lift_start"] == pytest.approx(med[0])
        assert g[f"ch7_{algo}_lift_end"] == pytest.approx(med[-1])
        assert g[f"ch7_{algo}_lift_min"] == pytest.approx(med.min())
    assert (g["ch7_lift_seeds"], g["ch7_lift_steps"], g["ch7_lift_eval_eps"]) == (3, 2_000, 20)
    assert g["ch7_lift_starts"] == "0.80, 0.50, 0.90"
    # final medians 0.90 (CSIL) and 0.80 (CSIL++): 0.10 apart, below 0.5 / sqrt(20) = 0.11
    assert g["ch7_lift_verdict"].startswith("the medians end 0.10 apart")


def test_verdict_names_the_direction_of_a_larger_gap(tmp_path):
    write_runs(tmp_path, {"csil": CSIL, "csilpp": [[0.8, 0.9, 0.3], [0.5, 0.2, 0.2], [0.9, 0.5, 0.1]]})
    assert run_cell(tmp_path)["ch7_lift_verdict"].startswith("CSIL++'s median ends 0.70 below CSIL's")


def test_different_bc_starts_fail_the_cell(tmp_path):
    write_runs(tmp_path, {"csil": CSIL, "csilpp": [[0.7, 0.9, 1.0], *CSILPP[1:]]})
    with pytest.raises(AssertionError):
        run_cell(tmp_path)


def test_runs_made_with_other_settings_fail_the_cell(tmp_path):
    write_runs(tmp_path, {"csil": CSIL, "csilpp": CSILPP}, csilpp={"bc_steps": 1_000})
    with pytest.raises(AssertionError):
        run_cell(tmp_path)


def test_a_csilpp_run_without_csilpp_critic_fails_the_cell(tmp_path):
    write_runs(tmp_path, {"csil": CSIL, "csilpp": CSILPP}, csilpp={"agent": {"utd": 1}})
    with pytest.raises(AssertionError):
        run_cell(tmp_path)


def test_no_stored_runs_prints_a_note_and_glues_nothing(tmp_path, capsys):
    assert run_cell(tmp_path) == {}
    assert "No stored Lift runs" in capsys.readouterr().out


def test_csilpp_runs_from_an_older_csilpp_config_fail_the_cell(tmp_path):
    """Runs stored before a change of the CSIL++ preset (here its old [-60, 0] support) are not what the text
    describes."""
    write_runs(tmp_path, {"csil": CSIL, "csilpp": CSILPP}, csilpp={"nets": {"critic_v_min": -60.0}})
    with pytest.raises(AssertionError):
        run_cell(tmp_path)


def test_runs_stored_before_a_config_field_existed_compare_at_its_default(tmp_path):
    write_runs(tmp_path, {"csil": CSIL, "csilpp": CSILPP})
    for d in (tmp_path / "ch06" / "lift").glob("csil_*"):
        cfg = json.loads((d / "config.json").read_text())
        del cfg["agent"]["critic_weight_decay"]  # a field added after the runs were made
        (d / "config.json").write_text(json.dumps(cfg))
    assert run_cell(tmp_path)["ch7_lift_seeds"] == 3

"""Chapter 9's stored runs (book/_artefacts/ch09/<setting>/) are what scripts/ch09_cpu_runs.py makes today: every
run's configuration is the script's for its setting, method and seed (a changed preset or script makes this fail
until the runs are made again), every method of the setting has seeds 0-2, and every record holds the protocol's 5
final evaluations."""

import importlib.util
import json
from pathlib import Path

import pytest

from csil_lite.config import RunConfig
from csil_lite.report import protocol_summary, read_final_eval

ROOT = Path(__file__).resolve().parents[1]
STORED = ROOT / "book" / "_artefacts" / "ch09"


def script():
    spec = importlib.util.spec_from_file_location("ch09_cpu_runs", ROOT / "scripts" / "ch09_cpu_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STORED_SETTINGS = sorted(d.name for d in STORED.iterdir() if d.is_dir())


def test_the_chapters_settings_are_stored():
    assert "toy" in STORED_SETTINGS and set(STORED_SETTINGS) <= set(script().SETTINGS), STORED_SETTINGS


@pytest.mark.parametrize("setting", STORED_SETTINGS)
def test_stored_runs_are_the_scripts(setting):
    s = script()
    spec = s.SETTINGS[setting]
    folder = STORED / setting
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["setting"] == setting and settings["task"] == spec["task"] and settings["base"] == spec["base"]
    runs = sorted(d for d in folder.iterdir() if d.is_dir())
    seen: dict[str, set[int]] = {}
    for d in runs:
        record = read_final_eval(d)
        assert len(record["success_rates"]) == s.REPEATS and record["task"] == spec["task"], d
        seen.setdefault(record["method"], set()).add(record["seed"])
        assert d.name == f"{record['method'].replace(' ', '_')}_{record['seed']}"
        if record["method"] == "base":
            assert record["base"] == spec["base"] and record["execute_steps"] == s.CHUNK
            continue
        stored = RunConfig.from_dict(json.loads((d / "config.json").read_text()))
        expected = s.config(setting, record["method"], record["seed"], settings["env_steps"],
                            settings["residual_scale"])
        assert stored == expected, d
        rows = [json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines()]
        assert rows[-1]["step"] == settings["env_steps"]
        assert len(rows) == settings["env_steps"] // spec["eval_every"] + 1
        assert record["best_success_rate"] == max(r["success_rate"] for r in rows)
    assert seen == {m: {0, 1, 2} for m in spec["methods"]}, seen
    assert all(c["evaluations"] == 3 * s.REPEATS for c in protocol_summary(map(read_final_eval, runs)).values())

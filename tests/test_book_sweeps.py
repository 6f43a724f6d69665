"""The book's stored runs are their sweep files' runs: for every sweep file of `sweeps/book_*.toml` and the folder
it stores into, every stored run is a run of the file (its name) whose config.json equals the file's configuration
(the demonstrations file compared by name; a field added to the configs after a run was made is absent from its
config.json and must be at its default in the file's), and every run of the file is stored (the pre-registered
test: its settings.json's arms are the file's, and its stored runs a subset while it runs)."""

import dataclasses
import json
from pathlib import Path

import pytest

from csil_lite.config import RunConfig
from csil_lite.sweep import expand_file
from csil_lite.train import GROUPS

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / "book" / "_artefacts"
STORED = {"book_ch05.toml": (ART / "ch05", True), "book_ch06_toy.toml": (ART / "ch06" / "toy", True),
          "book_ch06_lift.toml": (ART / "ch06" / "lift", True),
          "book_ch06_preregistered.toml": (ART / "ch06" / "preregistered", False),
          "book_ch09_toy.toml": (ART / "ch09" / "toy", True), "book_ch09_can.toml": (ART / "ch09" / "can", True)}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = list(v) if isinstance(v, tuple) else v
    return out


def _defaults() -> dict:
    out = {}
    for f in dataclasses.fields(RunConfig):
        if f.name in GROUPS:
            for g in dataclasses.fields(GROUPS[f.name]):
                if g.default is not dataclasses.MISSING:
                    out[f"{f.name}.{g.name}"] = g.default
        elif f.default is not dataclasses.MISSING:
            out[f.name] = f.default
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def mismatches(stored: dict, expected: RunConfig) -> dict:
    """{field: (stored, expected)} where a stored config.json differs from the expected configuration."""
    have, want, defaults = _flat(stored), _flat(json.loads(json.dumps(expected.to_dict()))), _defaults()
    out = {}
    for key, value in want.items():
        if key == "demos_path":
            if (value and Path(value).name) != (have.get(key) and Path(have[key]).name):
                out[key] = (have.get(key), value)
        elif key == "budget" and key not in have:  # names the preset; its fields are compared one by one
            continue
        elif key in have:
            if have[key] != value:
                out[key] = (have[key], value)
        elif key not in defaults or defaults[key] != value:  # absent: made before the field existed
            out[key] = ("absent", value)
    out.update({k: (v, "not a field") for k, v in have.items() if k not in want})
    return out


def test_mismatches_sees_a_changed_field_and_tolerates_only_default_new_ones():
    (run,) = expand_file(ROOT / "sweeps" / "book_ch06_toy.toml", arms=["csil"], seeds=[0])
    stored = run.config.to_dict()
    assert mismatches(stored, run.config) == {}
    assert mismatches({**stored, "eval_episodes": 7}, run.config) == {"eval_episodes": (7, run.config.eval_episodes)}
    old = {**stored, "agent": {k: v for k, v in stored["agent"].items() if k != "refine_every"}}
    assert mismatches(old, run.config) == {}  # refine_every at its default
    odd = dataclasses.replace(run.config, agent=dataclasses.replace(run.config.agent, refine_every="update"))
    assert mismatches(old, odd) == {"agent.refine_every": ("absent", "update")}


@pytest.mark.parametrize("name", sorted(STORED))
def test_stored_runs_are_the_sweep_files(name):
    folder, complete = STORED[name]
    runs = {r.name: r for r in expand_file(ROOT / "sweeps" / name)}
    stored = sorted(d for d in folder.iterdir() if d.is_dir() and (d / "summary.json").exists()
                    and d.name != "pilot" and not d.name.startswith("base_"))  # chapter 9's base: an evaluation
    assert stored, folder
    for d in stored:
        assert d.name in runs, (d.name, sorted(runs))
        cfg = json.loads((d / "config.json").read_text())
        assert mismatches(cfg, runs[d.name].config) == {}, d
        assert not (d / "checkpoints").exists() and not (d / "prepare").exists(), d
    if complete:
        assert sorted(d.name for d in stored) == sorted(runs)


def test_the_preregistered_settings_are_the_sweep_files_arms():
    settings = json.loads((ART / "ch06" / "preregistered" / "settings.json").read_text())
    runs = {r.arm: r.config for r in expand_file(ROOT / "sweeps" / "book_ch06_preregistered.toml", seeds=[0])}
    assert sorted(runs) == sorted(settings["arms"])
    for arm, cfg in runs.items():
        assert mismatches(settings["arms"][arm], cfg) == {}, arm

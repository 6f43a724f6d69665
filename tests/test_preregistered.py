"""Chapter 6's pre-registered test (scripts/ch06_preregistered.py): its settings build valid configurations for
every arm, the pilot's rule and the secondary metric do what its docstring says."""

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


def test_secondary_metric_uses_the_moving_average(script):
    steps = [0, 2500, 5000, 7500, 10000]
    # one lucky evaluation at 0.8 does not count; three in a row averaging 0.8 do
    assert script.smoothed_steps_to(steps, [0.2, 0.8, 0.5, 0.6, 0.6]) is None
    assert script.smoothed_steps_to(steps, [0.2, 0.7, 0.8, 0.95, 0.9]) == 7500

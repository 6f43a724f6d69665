"""TensorBoard and W&B (offline) logs through the loop's on_eval: the scalars read back from the event files and
the offline run file are the rows of metrics.jsonl, from `train` and from `csil-lite train --tensorboard --wandb`."""

import json

import pytest

pytest.importorskip("tensorboardX")

from csil_lite import cli  # noqa: E402
from csil_lite.loop import read_metrics  # noqa: E402
from csil_lite.run_logs import TensorBoardLog, eval_log, read_scalars, read_wandb_history  # noqa: E402

TINY_SET = ["num_demos=3", "bc_steps=50", "critic_pretrain_steps=20", "env_steps=300", "learning_starts=64",
            "eval_every=100", "eval_episodes=2", "replay_capacity=1000", "agent.n_demo=32", "agent.n_online=32",
            "nets.policy_hidden=[16]", "nets.features=16", "nets.critic_hidden=[16]"]


def test_rows_become_scalars_at_their_step(tmp_path):
    rows = [{"step": 0, "success_rate": 0.5, "wall_time": 1.0, "note": "text", "done": True, "bad": float("nan")},
            {"step": 100, "success_rate": 0.75, "wall_time": 2.5, "critic_loss": 3.0}]
    with TensorBoardLog(tmp_path / "tb") as log:
        for r in rows:
            log(r)
    got = read_scalars(tmp_path / "tb")
    assert got["success_rate"] == [(0, 0.5), (100, 0.75)]
    assert got["time/wall_s"] == [(0, 1.0), (100, 2.5)] and got["critic_loss"] == [(100, 3.0)]
    assert not {"note", "done", "bad", "step"} & set(got)  # text, flags, non-finite values and the step itself


def test_wandb_offline_run_holds_the_rows_and_both_sinks_get_them(tmp_path):
    pytest.importorskip("wandb")
    rows = [{"step": 0, "success_rate": 0.5, "wall_time": 1.0, "note": "text", "done": True, "bad": float("nan")},
            {"step": 100, "success_rate": 0.75, "wall_time": 2.5, "critic_loss": 3.0}]
    with eval_log(tmp_path / "run", tensorboard=True, wandb=True, config={"seed": 3}) as log:
        for r in rows:
            log(r)
    history = read_wandb_history(tmp_path / "run")
    assert [h["_step"] for h in history] == [0, 100]
    assert [h["success_rate"] for h in history] == [0.5, 0.75] and history[1]["critic_loss"] == 3.0
    assert history[0]["time/wall_s"] == 1.0 and not {"note", "done", "bad"} & set(history[0])
    assert read_scalars(tmp_path / "run" / "tensorboard")["success_rate"] == [(0, 0.5), (100, 0.75)]
    with eval_log(tmp_path / "none", tensorboard=False) as log:
        assert log is None and not (tmp_path / "none").exists()


@pytest.mark.slow
def test_cli_train_with_tensorboard_logs_every_evaluation(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--task", "pointmass-reach", "--out", str(out), "--tensorboard", "--wandb"]
    for item in TINY_SET:
        argv += ["--set", item]
    assert cli.main(argv) == 0
    json.loads(capsys.readouterr().out)  # the summary is still printed as JSON
    rows = read_metrics(out)
    got = read_scalars(out / "tensorboard")
    assert [s for s, _ in got["success_rate"]] == [r["step"] for r in rows]
    assert [v for _, v in got["success_rate"]] == pytest.approx([r["success_rate"] for r in rows], abs=1e-6)
    numeric = {k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert numeric - {"step", "wall_time"} <= set(got), numeric - set(got)  # every number of the log is there
    history = read_wandb_history(out)  # and the offline W&B run holds the same rows
    assert [h["_step"] for h in history] == [r["step"] for r in rows]
    assert [h["success_rate"] for h in history] == pytest.approx([r["success_rate"] for r in rows], abs=1e-6)

"""`csil-lite evaluate --base` on a stand-in checkpoint and on a server address (the toy task, an untrained
stand-in: this checks the plumbing, the success rate is not the point)."""

from __future__ import annotations

import re

import numpy as np

from csil_lite import cli
from csil_lite.base import standin as si
from csil_lite.base.server import ServerThread


def test_evaluate_local_and_remote_base(tmp_path, capsys):
    cfg = si.StandInConfig(obs_dim=6, action_dim=2, hidden=32, embed_dim=16, layers=1)
    pol = si.StandInPolicy(cfg, si.init_params(cfg), np.zeros(6), np.ones(6), task="pointmass-reach")
    si.save_standin(tmp_path / "ck", pol)
    argv = ["--task", "pointmass-reach", "--episodes", "2", "--execute-steps", "5"]  # 2 episodes of <= 100 steps
    assert cli.main(["evaluate", "--base", str(tmp_path / "ck"), *argv]) == 0
    local = capsys.readouterr().out
    m = re.search(r"success rate (\d+) % over 2 episodes, mean length (\d+), (\d+) base queries", local)
    assert m, local
    length, queries = int(m.group(2)), int(m.group(3))
    assert queries >= 2 * np.ceil(length / 5) - 2  # ceil(T_i / 5) per episode (lengths may differ)
    with ServerThread(pol, port=0) as srv:
        assert cli.main(["evaluate", "--base", f"127.0.0.1:{srv.port}", *argv]) == 0
        assert srv.server.served == int(re.search(r"(\d+) base queries", capsys.readouterr().out).group(1))
    assert cli.main(["evaluate", "--base", str(tmp_path / "ck"), "--task", "pointmass-reach",
                     "--execute-steps", "11"]) == 2
    assert "at most the base's chunk length 10" in capsys.readouterr().err

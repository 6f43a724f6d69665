"""csil-lite sweep: the grid, resumption, per-run failures, and runs on Ray (started by the sweep, and a two-node
cluster joined through RAY_ADDRESS) giving the same metrics as the same runs made one by one with `train`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from csil_lite.errors import UserError
from csil_lite.loop import read_metrics, train
from csil_lite.sweep import Job, expand, grid, jobs_for, main, read_sweep_file, run_sweep

TINY = {"num_demos": 3, "bc_steps": 50, "critic_pretrain_steps": 20, "env_steps": 300, "learning_starts": 64,
        "eval_every": 100, "eval_episodes": 2, "replay_capacity": 1000,
        "agent": {"n_demo": 32, "n_online": 32}, "nets": {"policy_hidden": (16,), "features": 16, "critic_hidden": (16,)}}
TASK = "pointmass-reach"


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]


@pytest.fixture(scope="module")
def one_by_one(tmp_path_factory):
    """The reference: every run of the 2 x 2 grid made directly with `train`."""
    root = tmp_path_factory.mktemp("one_by_one")
    runs = grid(["csil", "bc"], [TASK], [0, 1], overrides=TINY)
    for name, cfg in runs:
        train(cfg, root / name, progress=False)
    return {name: _strip(read_metrics(root / name)) for name, _ in runs}


def test_grid_names_and_overrides():
    runs = grid(["csil", "bc"], [TASK], [0, 1, 2], overrides={**TINY, "env_steps": 123})
    assert [n for n, _ in runs] == [f"{a}_{TASK}_{s}" for a in ("csil", "bc") for s in (0, 1, 2)]
    assert {cfg.env_steps for _, cfg in runs} == {123} and {cfg.seed for _, cfg in runs} == {0, 1, 2}
    assert runs[0][1].nets.features == 16
    with pytest.raises(UserError, match="empty"):
        grid([], [TASK], [0])
    with pytest.raises(UserError, match="csil_pointmass-reach_0"):
        grid(["csil"], [TASK], [0], overrides={"env_steps": -5})


def test_sweep_file_is_checked(tmp_path):
    good = tmp_path / "s.toml"
    good.write_text('[sweep]\nalgos = ["bc"]\ntasks = ["pointmass-reach"]\nseeds = [0]\n[set]\nenv_steps = 200\n'
                    '"agent.beta" = 0.5\n[resources]\ncpus = 1\n')
    spec = read_sweep_file(good)
    assert spec["set"] == {"env_steps": 200, "agent.beta": 0.5}
    bad = tmp_path / "b.toml"
    bad.write_text('[sweep]\nalgo = ["bc"]\n')
    with pytest.raises(UserError, match="unknown \\[sweep\\] keys"):
        read_sweep_file(bad)
    with pytest.raises(UserError, match="does not exist"):
        read_sweep_file(tmp_path / "none.toml")


def test_grid_variants_and_the_task_placeholder(tmp_path):
    runs = grid(["csilpp"], ["lift", "can"], [0], overrides={"demos_path": "demos/{task}_200.hdf5"},
                vary={"agent.beta": [0.01, 0.3], "base.chunk": [5]})
    names = [n for n, _ in runs]
    assert names == [f"csilpp_{t}_0__beta-{b}__chunk-5" for t in ("lift", "can") for b in (0.01, 0.3)]
    assert [cfg.demos_path for _, cfg in runs] == ["demos/lift_200.hdf5"] * 2 + ["demos/can_200.hdf5"] * 2
    assert [cfg.agent.beta for _, cfg in runs] == [0.01, 0.3, 0.01, 0.3] and {c.base.chunk for _, c in runs} == {5}
    with pytest.raises(UserError, match="non-empty list"):
        grid(["csil"], ["lift"], [0], vary={"agent.beta": 0.3})
    bad = tmp_path / "g.toml"
    bad.write_text('[sweep]\nalgos = ["bc"]\n[grid]\n"critic.beta" = [1]\n')
    with pytest.raises(UserError, match="unknown section 'critic'"):
        read_sweep_file(bad)


def test_arms_are_named_algorithms_with_overrides_of_their_own(tmp_path):
    """[arms]: each arm an algorithm with its own overrides, on top of [set] and under a [grid] variant; a name
    template; --arms picks arms; algos and arms together, an arm without algo, a bad field or template are errors."""
    from csil_lite.sweep import expand_file

    f = tmp_path / "arms.toml"
    f.write_text('[sweep]\ntasks = ["pointmass-reach"]\nseeds = [0, 1]\nname = "{arm}_{seed}"\n'
                 '[set]\nenv_steps = 400\n"agent.beta" = 0.5\n"nets.features" = 16\n'
                 '[arms.plain]\nalgo = "csilpp"\n'
                 '[arms.slow_critic]\nalgo = "csilpp"\n"agent.critic_lr" = 1e-5\nenv_steps = 600\n'
                 '[arms.bc]\nalgo = "bc"\neval_every = 400\n')
    runs = expand_file(f)
    assert [r.name for r in runs] == ["plain_0", "plain_1", "slow_critic_0", "slow_critic_1", "bc_0", "bc_1"]
    by = {r.name: r for r in runs}
    assert by["plain_0"].arm == "plain" and by["plain_0"].config.algo == "csilpp" and by["bc_1"].config.algo == "bc"
    plain, slow = by["plain_0"].config, by["slow_critic_0"].config
    assert slow.agent.critic_lr == 1e-5 and plain.agent.critic_lr != 1e-5
    assert (plain.env_steps, slow.env_steps, by["bc_0"].config.eval_every) == (400, 600, 400)
    assert slow.agent.beta == plain.agent.beta == 0.5 and slow.nets.features == 16  # [set] reaches every arm
    assert [r.name for r in expand_file(f, arms=["bc"], seeds=[3])] == ["bc_3"]
    assert [r.name for r in expand_file(f, ["agent.beta=0.1"], arms=["plain"])][0] == "plain_0"
    assert expand_file(f, ["agent.beta=0.1"], arms=["plain"])[0].config.agent.beta == 0.1
    with pytest.raises(UserError, match="no arm nope"):
        expand_file(f, arms=["nope"])
    with pytest.raises(UserError, match="--arms, not --algos"):
        expand_file(f, algos=["csil"])
    f.write_text(f.read_text() + '[grid]\n"agent.tau" = [0.01, 0.02]\n')
    names = [r.name for r in expand_file(f, arms=["plain"], seeds=[0])]
    assert names == ["plain_0__tau-0.01", "plain_0__tau-0.02"]
    for body, match in (('[sweep]\nalgos = ["csil"]\n[arms.a]\nalgo = "csil"\n', "both given"),
                        ('[sweep]\ntasks = ["pointmass-reach"]\nseeds = [0]\n[arms.a]\n"agent.beta" = 1.0\n',
                         "needs algo"),
                        ('[sweep]\ntasks = ["pointmass-reach"]\nseeds = [0]\n[arms.a]\nalgo = "csil"\n'
                         '"agent.betta" = 1.0\n', r"\[arms.a\].*betta"),
                        ('[sweep]\ntasks = ["pointmass-reach"]\nseeds = [0]\nname = "{arm}_{lr}"\n[arms.a]\n'
                         'algo = "csil"\n', "must use {seed}"),
                        ('[sweep]\ntasks = ["pointmass-reach"]\nseeds = [0]\nname = "{arm}"\n[arms.a]\n'
                         'algo = "csil"\n', "must use {seed}")):
        f.write_text(body)
        with pytest.raises(UserError, match=match):
            expand_file(f)
    # without [arms] every algorithm is an arm of its name, so the names are those of before
    g = tmp_path / "algos.toml"
    g.write_text('[sweep]\nalgos = ["csil", "bc"]\ntasks = ["pointmass-reach"]\nseeds = [0]\n')
    assert [(r.name, r.arm) for r in expand_file(g)] == [("csil_pointmass-reach_0", "csil"),
                                                        ("bc_pointmass-reach_0", "bc")]


def test_store_small_keeps_a_finished_runs_small_files_only(tmp_path):
    """A run of a `store_small` sweep ends as the book stores runs: no checkpoints/ or prepare/, and it still
    counts as finished (skipped when the sweep runs again)."""
    from csil_lite.sweep import run_job

    (name, cfg), = grid(["bc"], [TASK], [0], overrides={**TINY, "env_steps": 100, "checkpoint_every": 50})
    job, = jobs_for([(name, cfg)], tmp_path, store_small=True)
    outcome = run_job(job)
    assert outcome.status == "done", outcome.error
    left = sorted(p.name for p in Path(job.run_dir).iterdir())
    assert "checkpoints" not in left and "prepare" not in left and "config.json" in left and "summary.json" in left
    assert [o.status for o in run_sweep([job], backend="local", progress=False)] == ["skipped"]
    assert jobs_for(expand(["bc"], [TASK], [0], overrides={**TINY, "env_steps": 100, "checkpoint_every": 50}),
                    tmp_path) == jobs_for([(name, cfg)], tmp_path)  # `expand`'s runs as well as (name, config)
    kept, = jobs_for([(name, cfg)], tmp_path / "kept")
    run_job(kept)
    assert (Path(kept.run_dir) / "checkpoints").is_dir()  # the default keeps what a resume needs


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.parent.glob("sweeps/*.toml")), ids=lambda p: p.name)
def test_the_shipped_sweep_files_expand_into_valid_runs(path):
    """Every sweep file in sweeps/ (the paper's figures and tables, the book's stored runs) reads, and its grid is
    a list of valid configurations with the runs its comment promises."""
    import re

    from csil_lite.sweep import runs_of_file

    runs = runs_of_file(path)
    promised = re.search(r"(\d+) runs", path.read_text())
    assert promised and len(runs) == int(promised.group(1)), (len(runs), path.name)
    assert all("{task}" not in str(cfg.to_dict()) for _, cfg in runs)


@pytest.mark.slow
def test_local_sweep_resumes_an_interrupted_run_and_reports_failures(tmp_path, one_by_one):
    runs = grid(["csil"], [TASK], [0, 1], overrides=TINY)
    jobs = jobs_for(runs, tmp_path, tensorboard=True)
    train(runs[0][1], jobs[0].run_dir, progress=False, stop_after=150)  # interrupted midway, as a kill would
    assert not (Path(jobs[0].run_dir) / "summary.json").exists()
    broken = Job("broken", {**jobs[1].config, "task": "lift", "demos_path": str(tmp_path / "missing.hdf5")},
                 str(tmp_path / "broken"))
    outcomes = run_sweep([*jobs, broken], backend="local", workers=2, progress=False)
    assert [o.status for o in outcomes] == ["done", "done", "failed"]
    assert "missing.hdf5" in outcomes[2].error and (tmp_path / "broken" / "sweep_error.txt").exists()
    for job in jobs:  # the resumed run ends exactly where the uninterrupted one did
        assert _strip(read_metrics(job.run_dir)) == one_by_one[job.name]
    from csil_lite.run_logs import read_scalars  # and the sweep's TensorBoard log holds the run's evaluations
    steps = [s for s, _ in read_scalars(Path(jobs[1].run_dir) / "tensorboard")["success_rate"]]
    assert steps == [r["step"] for r in one_by_one[jobs[1].name]]
    again = run_sweep(jobs, backend="local", workers=2, progress=False)
    assert [o.status for o in again] == ["skipped", "skipped"]


@pytest.mark.slow
def test_ray_sweep_equals_runs_made_one_by_one(tmp_path, one_by_one, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    sweep_file = tmp_path / "grid.toml"
    set_lines = "\n".join(f'"{k}" = {json.dumps(v)}' for k, v in TINY.items() if not isinstance(v, dict))
    set_lines += "\n" + "\n".join(f'"{g}.{k}" = {json.dumps(list(v) if isinstance(v, tuple) else v)}'
                                  for g in ("agent", "nets") for k, v in TINY[g].items())
    sweep_file.write_text(f'[sweep]\nalgos = ["csil", "bc"]\ntasks = ["{TASK}"]\nseeds = [0, 1]\n[set]\n{set_lines}\n')
    assert main([str(sweep_file), "--out", str(tmp_path / "out"), "--workers", "2"]) == 0
    for name, rows in one_by_one.items():
        assert _strip(read_metrics(tmp_path / "out" / name)) == rows, name


@pytest.mark.slow
def test_ray_sweep_on_a_two_node_cluster_joined_through_ray_address(tmp_path, one_by_one, monkeypatch):
    pytest.importorskip("ray")
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    port = "6391"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                    "--disable-usage-stats"], check=True, env=env, capture_output=True, timeout=120)
    try:
        subprocess.run([ray_bin, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1"], check=True, env=env,
                       capture_output=True, timeout=120)
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
        import ray
        ray.init(address=f"127.0.0.1:{port}", log_to_driver=False)
        try:
            assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        finally:
            ray.shutdown()
        runs = grid(["csil", "bc"], [TASK], [0], overrides=TINY)
        outcomes = run_sweep(jobs_for(runs, tmp_path), backend="ray", progress=False)
        assert [o.status for o in outcomes] == ["done", "done"], outcomes
        for name, _ in runs:
            assert _strip(read_metrics(tmp_path / name)) == one_by_one[name], name
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_a_run_directory_in_use_is_refused_and_nothing_in_it_touched(tmp_path):
    """Two processes training into one directory (a sweep started again while a killed sweep's worker still runs)
    would interleave their metrics: the second stops with a clear error before writing anything."""
    import fcntl

    (name, cfg), = grid(["bc"], [TASK], [0], overrides={**TINY, "env_steps": 100})
    run_dir = tmp_path / name
    run_dir.mkdir()
    fd = os.open(run_dir, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file description: as another process would
    try:
        with pytest.raises(UserError, match="in use by another process"):
            train(cfg, run_dir, progress=False)
        assert list(run_dir.iterdir()) == []
    finally:
        os.close(fd)
    train(cfg, run_dir, progress=False)  # released: it runs
    assert (run_dir / "summary.json").exists()


def test_pool_workers_end_with_the_sweep_process(tmp_path):
    """A killed sweep leaves no worker behind: the local pool's workers watch their parent and exit with it."""
    import signal
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        "from csil_lite.sweep import pool\n"
        "if __name__ == '__main__':\n"
        "    p = pool(1)\n"
        "    print(p.submit(os.getpid).result(), flush=True)\n"
        "    p.submit(time.sleep, 600)\n"
        "    time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        os.kill(worker, 0)  # alive while the parent is
        parent.send_signal(signal.SIGKILL)  # as `kill -9` of the sweep would
        parent.wait(timeout=30)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"worker {worker} outlived its sweep")
    finally:
        parent.kill()

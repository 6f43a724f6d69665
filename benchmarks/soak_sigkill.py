"""SIGKILL soak: kill a preview run at random moments (some during BC / SARSA pretraining, some while a checkpoint
is being written), resume it each time, and check that it ends exactly as an uninterrupted run does.

The run (`train` in a child process, one per attempt) is a small preview CSIL run on pointmass-reach with
checkpoints every few hundred env steps, so that every phase (BC, SARSA, online) and every kind of write (the
pretraining chunks' checkpoints, the prepared setup, the online checkpoints, metrics.jsonl) is hit. The killer
either waits a random time, or (every fourth kill) watches the run directory and kills the moment a checkpoint
is being written (a new orbax temporary directory appears). Of the others, every fourth is killed at a random
moment between 60 % of a process's start-up (the time the uninterrupted run took to its first checkpoint) and
start-up + 20 % of the work after it; the rest are killed a random time (up to 10 % of that work) after the
attempt has finished a new checkpoint, so that the run moves on through every phase (start-up, BC, SARSA, online)
however loaded the machine is, instead of being killed again and again before its first checkpoint.

After every kill it checks that the directory holds a complete checkpoint whenever it held one before the kill
(no moment without one): the newest finalised step of each checkpoint directory never goes back. At the end the
metrics (evaluation for evaluation, wall time aside) must equal the uninterrupted run's.

    python benchmarks/soak_sigkill.py [--kills 20] [--seed 0] [--out DIR]

Prints one row per kill (time after start, phase, what was on disk, whether the next attempt resumed from it)
and the final comparison; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = """
import sys
from csil_lite.configs import preset
from csil_lite.loop import train
cfg = preset("preview", task="pointmass-reach", num_demos=3, bc_steps=2000, critic_pretrain_steps=1500,
             env_steps=4000, learning_starts=200, eval_every=250, eval_episodes=5, checkpoint_every=150,
             replay_capacity=5000, agent=dict(n_demo=32, n_online=32),
             nets=dict(policy_hidden=(32,), features=32, critic_hidden=(32,)))
train(cfg, sys.argv[1], progress=False)
"""

CKPT_DIRS = ("prepare/behaviour_cloning", "prepare/critic_pretraining", "prepare/result", "checkpoints")


def latest_steps(run: Path) -> dict[str, int | None]:
    """The newest finalised step of every checkpoint directory of the run (None: none), read from disk."""
    out = {}
    for d in CKPT_DIRS:
        p = run / d
        steps = [int(c.name) for c in p.iterdir() if c.is_dir() and c.name.isdigit()
                 and (c / "_CHECKPOINT_METADATA").exists()] if p.is_dir() else []
        out[d] = max(steps) if steps else None
    return out


def temporaries(run: Path) -> set[str]:
    """The orbax temporary directories in the run now (a checkpoint is written into one, then renamed)."""
    out = set()
    for d in CKPT_DIRS:
        p = run / d
        if p.is_dir():
            out |= {f"{d}/{c.name}" for c in p.iterdir() if "tmp" in c.name}
    return out


def writing(run: Path, stale: set[str]) -> bool:
    """Whether a checkpoint is being written now: a temporary directory that was not left by an earlier kill."""
    return bool(temporaries(run) - stale)


def phase(steps: dict[str, int | None], done: bool) -> str:
    if done:
        return "finished"
    if steps["prepare/result"] is None:
        return "SARSA" if steps["prepare/behaviour_cloning"] is not None and \
            steps["prepare/behaviour_cloning"] >= 2000 else "BC"
    return "online"


def start(run: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONHASHSEED="0")
    with open(log, "w") as err:  # a file, not a pipe: a full pipe would block the child
        return subprocess.Popen([sys.executable, "-c", CHILD, str(run)], env=env, stdout=subprocess.DEVNULL,
                                stderr=err)


def rows_of(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(ln).items() if k != "wall_time"}
            for ln in (run / "metrics.jsonl").read_text().splitlines()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="keep the run directories here (default: a temp dir)")
    args = ap.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="soak_sigkill_"))
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)

    t0 = time.perf_counter()
    ref = start(root / "uninterrupted", root / "uninterrupted.log")
    first = None  # when the first checkpoint of the uninterrupted run appeared: the start-up of a process
    while ref.poll() is None:
        if first is None and any(v is not None for v in latest_steps(root / "uninterrupted").values()):
            first = time.perf_counter() - t0
        time.sleep(0.05)
    if ref.returncode != 0:
        print((root / "uninterrupted.log").read_text()[-3000:])
        return 1
    duration = time.perf_counter() - t0
    first = duration / 4 if first is None else first
    print(f"uninterrupted run: {duration:.0f} s (first checkpoint after {first:.1f} s); "
          f"{len(rows_of(root / 'uninterrupted'))} evaluations")

    run = root / "killed"
    table, failures = [], []
    kill = 0
    while kill < args.kills:
        before = latest_steps(run)
        log = root / f"attempt_{len(table)}.log"
        proc = start(run, log)
        t_start = time.perf_counter()
        at_write, at_random = kill % 4 == 3, kill % 4 == 1
        stale = temporaries(run)
        work = duration - first
        # at_random: a moment between 60 % of a process's start-up and start-up + 20 % of the work after it;
        # otherwise (not at_write) a random time after the attempt's first new checkpoint
        deadline = t_start + (rng.uniform(0.6 * first, first + 0.2 * work) if at_random else duration * 3)
        after_progress = rng.uniform(0.0, 0.1 * work)
        killed = False
        while proc.poll() is None and time.perf_counter() < deadline:
            if at_write and writing(run, stale):
                break
            if not (at_write or at_random) and latest_steps(run) != before:
                deadline = min(deadline, time.perf_counter() + after_progress)
            time.sleep(0.002 if at_write else 0.05)
        if proc.poll() is None:
            during_write = writing(run, stale)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = True
        after = latest_steps(run)
        done = (run / "summary.json").exists()
        if proc.returncode not in (0, -signal.SIGKILL):
            failures.append(f"attempt {kill}: exit {proc.returncode}: {log.read_text()[-2000:]}")
            break
        # A finalised checkpoint never disappears without a newer one of the same stage or a later stage.
        lost = [d for d in CKPT_DIRS if before[d] is not None and (after[d] is None or after[d] < before[d])
                and not (d.startswith("prepare/") and d != "prepare/result" and after["prepare/result"] is not None)]
        if lost:
            failures.append(f"kill {kill}: checkpoint gone from {lost}: {before} -> {after}")
        resumed_from = {d: v for d, v in before.items() if v is not None}
        how = "at write" if at_write else "random" if at_random else "progress"
        table.append((kill, time.perf_counter() - t_start, how, phase(after, done and not killed),
                      "yes" if killed and during_write else "no", resumed_from, after, not lost))
        if not killed:
            break
        kill += 1
    if not (run / "summary.json").exists():
        proc = start(run, root / "final.log")
        if proc.wait() != 0:
            failures.append(f"final resume: exit {proc.returncode}: {(root / 'final.log').read_text()[-2000:]}")

    print(f"\n{'kill':>4} {'at s':>6} {'when':>8} {'phase':>8} {'in write':>8}  resumed from (before the attempt) "
          f"-> on disk after the kill  ok")
    short = {"prepare/behaviour_cloning": "bc", "prepare/critic_pretraining": "sarsa", "prepare/result": "prepared",
             "checkpoints": "online"}
    for kill, t, how, ph, w, before, after, ok in table:
        b = ", ".join(f"{short[d]} {v}" for d, v in before.items()) or "nothing"
        a = ", ".join(f"{short[d]} {v}" for d, v in after.items() if v is not None) or "nothing"
        print(f"{kill:>4} {t:>6.1f} {how:>8} {ph:>8} {w:>8}  {b} -> {a}  {'ok' if ok else 'LOST'}")
    same = (run / "summary.json").exists() and rows_of(run) == rows_of(root / "uninterrupted")
    print(f"\n{len(table)} attempts killed; final metrics identical to the uninterrupted run: {same}")
    if not same:
        failures.append("final metrics differ from the uninterrupted run's")
    for f in failures:
        print("FAILURE:", f)
    print(f"run directories: {root}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())

"""Longer CPU runs of chapter 5's comparison, stored under book/_artefacts/ch05/ for the chapter to plot.

Why: the preview (2,500 env steps) can only show whether CSIL *keeps* BC's successes; whether it improves on them
needs ~10x more interaction. These runs are the preview preset with a longer budget and a faster learner:
20k env steps, critic target tau 0.05 and 2 critic updates per env step (the critic has to learn the value of the
states BC fails in), actor lr 3e-4 and, for CSIL, beta 1. About 5 minutes per CSIL run on one CPU core.

    python scripts/ch05_cpu_runs.py [--seeds 0 1 2] [--out book/_artefacts/ch05] [--workers 2]

Only config.json, metrics.jsonl and summary.json are kept (the checkpoints are large and not needed to plot).
"""

from __future__ import annotations

import argparse
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

TASK = "pointmass-obstacles"
BUDGET = dict(env_steps=20_000, learning_starts=1_000, eval_every=2_000)
FAST = dict(tau=0.05, utd=2, actor_lr=3e-4)


def config(algo: str, seed: int):
    from csil_lite.config import preset

    agent = dict(FAST, beta=1.0) if algo == "csil" else dict(FAST)
    if algo == "bc":
        return preset("preview", algo="bc", task=TASK, seed=seed, **{**BUDGET, "eval_every": BUDGET["env_steps"]})
    return preset("preview", algo=algo, task=TASK, seed=seed, agent=agent, **BUDGET)


def run(job: tuple[str, int, str]) -> str:
    from csil_lite.loop import train

    algo, seed, out = job
    run_dir = Path(out) / f"{algo}_{seed}"
    summary = train(config(algo, seed), run_dir, progress=False, resume=False)
    shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
    return f"{algo} seed {seed}: success {summary['initial_success_rate']:.2f} -> {summary['final_success_rate']:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--algos", nargs="+", default=["csil", "sac_bc", "bc"])
    ap.add_argument("--out", default="book/_artefacts/ch05")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    jobs = [(a, s, args.out) for a in args.algos for s in args.seeds]
    with ProcessPoolExecutor(args.workers) as pool:
        for line in pool.map(run, jobs):
            print(line, flush=True)


if __name__ == "__main__":
    main()

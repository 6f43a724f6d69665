"""Longer CPU runs of chapter 5's comparison, stored under book/_artefacts/ch05/ for the chapter to plot.

Why: the chapter's preview (3,000 env steps, 2 seeds) shows whether CSIL keeps BC's successes and starts to
improve on them; how far it gets needs more interaction. These runs are the preview preset unchanged, with
20,000 env steps and 3 seeds: a few minutes per run on one CPU core.

    python scripts/ch05_cpu_runs.py [--seeds 0 1 2] [--out book/_artefacts/ch05] [--workers 2]

Only config.json, metrics.jsonl and summary.json are kept (the checkpoints are large and not needed to plot).
"""

from __future__ import annotations

import argparse
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

TASK = "pointmass-obstacles"
BUDGET = dict(env_steps=20_000, eval_every=2_000)


def config(algo: str, seed: int):
    from csil_lite.configs import preset

    if algo == "bc":
        return preset("preview", algo="bc", task=TASK, seed=seed, **{**BUDGET, "eval_every": BUDGET["env_steps"]})
    return preset("preview", algo=algo, task=TASK, seed=seed, **BUDGET)


def run(job: tuple[str, int, str]) -> str:
    from csil_lite.loop import train

    algo, seed, out = job
    run_dir = Path(out) / f"{algo}_{seed}"
    summary = train(config(algo, seed), run_dir, progress=False, resume=False)
    for bulky in ("checkpoints", "prepare"):  # the stored run is its small files
        shutil.rmtree(run_dir / bulky, ignore_errors=True)
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

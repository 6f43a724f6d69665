"""CPU runs of chapter 9 (fine-tuning a base policy), stored under book/_artefacts/ch09/ for the chapter to plot.

The base is the stored pointmass-reach stand-in (`BASE`, trained 1,000 steps on 50 scripted demos; alone it
succeeds in about 0.7 of the episodes with its chunks of 10 executed open-loop). On top of it, each method is the
preview preset of its algorithm with only the fields of `config` changed, seeds 0, 1 and 2:

- `base`: the base alone, re-evaluated as the runs' final evaluation is (`csil-lite evaluate --repeats 5`);
- `csilpp ensemble` (the paper's method), `xqc_od ensemble` and `xqc_od residual` (its baselines), and
  `csilpp residual` (the thesis's composition).

Every run follows the paper's protocol: evaluation every `EVAL_EVERY` steps for `EVAL_EPISODES` episodes, the best
parameters kept, re-evaluated 5 x `EVAL_EPISODES` at the end (final_eval.json); `--report` prints the
median [25th, 75th] table over seeds (`csil_lite.report`). The residual is the thesis's unbounded latent shift.
XQC+OD's residual starts at exactly the base (`residual_init_scale=0`, ResFiT's zero last layer): from its BC
start it executes far worse than the base (a smoke run, seed 0: 0.32 against the base's 0.74; with open-loop
chunks the residual's BC target depends on the chunk phase, which the state does not show), and a baseline that
starts below the base would be a straw man. CSIL++'s residual starts from its BC fit, as the thesis's does: its
coherence (the actor equal to the BC prior the reward is built from) holds only there. `--residual-scale` runs
the peers' bounded form clip(a_b + s a_pi) instead.

    python scripts/ch09_cpu_runs.py [--seeds 0 1 2] [--methods ...] [--steps N] [--out DIR] [--workers 2]
    python scripts/ch09_cpu_runs.py --report

Only config.json, metrics.jsonl, summary.json and final_eval.json are kept (checkpoints are large and not needed
to plot). Jobs run seed-major, the costliest method first; a run is copied to the output only once finished.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

TASK = "pointmass-reach"
BASE = "book/_artefacts/base/pointmass-reach_1000"
CHUNK = 10
DEMOS = 10
STEPS = 5_000
EVAL_EVERY = 500
EVAL_EPISODES = 50
REPEATS = 5
METHODS = ("csilpp ensemble", "csilpp residual", "xqc_od ensemble", "xqc_od residual", "base")


def config(method: str, seed: int, steps: int = STEPS, residual_scale: float | None = None):
    """The preview preset of the method's algorithm on `TASK` on top of `BASE` with this script's fields."""
    from csil_lite.configs import preset

    algo, compose = method.split()
    base = dict(source=BASE, chunk=CHUNK, compose=compose)
    if compose == "residual":
        base.update(residual_scale=residual_scale, residual_init_scale=0.0 if algo == "xqc_od" else None)
    return preset("preview", algo=algo, seed=seed, task=TASK, num_demos=DEMOS, env_steps=steps,
                  eval_every=EVAL_EVERY, eval_episodes=EVAL_EPISODES, final_eval_repeats=REPEATS, base=base)


def run(job: tuple[str, int, str, int, float | None]) -> str:
    """One run (or the base's evaluation) in a scratch folder, its small files copied to `out/<method>_<seed>`."""
    method, seed, out, steps, residual_scale = job
    name = f"{method.replace(' ', '_')}_{seed}"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ch09_run_") as scratch:
        run_dir = Path(scratch) / name
        if method == "base":
            from csil_lite.base.cli import evaluate_main

            evaluate_main(["--base", BASE, "--task", TASK, "--episodes", str(EVAL_EPISODES), "--repeats",
                           str(REPEATS), "--execute-steps", str(CHUNK), "--seed", str(seed), "--out", str(run_dir)])
            what = "evaluated"
        else:
            from csil_lite.loop import train

            summary = train(config(method, seed, steps, residual_scale), run_dir, progress=False, resume=False)
            for bulky in ("checkpoints", "prepare"):
                shutil.rmtree(run_dir / bulky, ignore_errors=True)
            what = f"success {summary['initial_success_rate']:.2f} -> {summary['final_success_rate']:.2f}"
        final = Path(out) / name
        shutil.rmtree(final, ignore_errors=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(run_dir, final)
    rates = json.loads((final / "final_eval.json").read_text())["success_rates"]
    return f"{method} seed {seed}: {what}; final evaluations {rates} ({time.perf_counter() - t0:.0f} s)"


def report(out: Path) -> None:
    """The protocol table of the stored runs (median [25th, 75th] over seeds x final evaluations)."""
    from csil_lite.report import protocol_summary, protocol_table, read_final_eval

    records = [read_final_eval(d) for d in sorted(out.iterdir()) if (d / "final_eval.json").exists()]
    summary = protocol_summary(records)
    print(protocol_table(summary, methods=["base", *[m for m in METHODS if m != "base"]]))
    for (m, t), c in sorted(summary.items()):
        print(f"{m:18s} {t}: {c['seeds']} seeds, {c['evaluations']} evaluations")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--steps", type=int, default=STEPS, help="env steps of each run")
    ap.add_argument("--residual-scale", type=float, default=None, help="the peers' bounded residual instead")
    ap.add_argument("--out", default="book/_artefacts/ch09")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--report", action="store_true", help="only print the table of the stored runs")
    args = ap.parse_args()
    out = Path(args.out)
    if not args.report:
        out.mkdir(parents=True, exist_ok=True)
        (out / "settings.json").write_text(json.dumps(
            {"task": TASK, "base": BASE, "chunk": CHUNK, "num_demos": DEMOS, "env_steps": args.steps,
             "eval_every": EVAL_EVERY, "eval_episodes": EVAL_EPISODES, "repeats": REPEATS,
             "residual_scale": args.residual_scale}, indent=2))
        with ProcessPoolExecutor(args.workers) as pool:
            futures = [pool.submit(run, (m, s, str(out), args.steps, args.residual_scale))
                       for s in args.seeds for m in METHODS if m in args.methods]
            for fut in as_completed(futures):
                print(fut.result(), flush=True)
    report(out)


if __name__ == "__main__":
    main()

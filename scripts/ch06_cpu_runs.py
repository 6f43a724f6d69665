"""CPU runs of chapter 6 (CSIL++), stored under book/_artefacts/ch06/ for chapters 6 and 7 to plot.

Two sets, each the preview preset with only the fields set in `config` changed, seeds 0, 1 and 2:

- toy/{algo}_{seed}: pointmass-obstacles; bc, csil, csilpp, xqc_od and sacfd, all for `TOY_STEPS` env steps,
  100 evaluation episodes every 1,000. With chapter 5's 25 demonstrations BC alone succeeds in 0.88/0.96/0.99
  of the episodes (seeds 0/1/2), so a success threshold would say nothing; these runs use `TOY_DEMOS`
  demonstrations. BC success by num_demos (`algo="bc"`, preview preset, 100 episodes, seeds 0/1/2):
  5: 0.22/0.13/-, 8: 0.29/0.22/0.13, 12: 0.76/0.61/0.87; 10 (chosen): the stored bc runs. The threshold
  (`THRESHOLD`) was fixed before any online run.
- lift/{algo}_{seed}: robosuite Lift from states; csil and csilpp for `LIFT_STEPS` env steps (learning from
  500, as chapter 7's preview), `LIFT_EVAL_EPISODES` evaluation episodes every 1,000 (chapter 7's 5 are 20
  points each), from 10 scripted demos written to a robomimic HDF5 file as chapter 7 builds them.

Stored now: the toy csil and csilpp runs with `--toy-steps 30000` (`--only toy --toy-algos csilpp csil`; the
CSIL++ preset as fixed in `configs/csilpp.py`: a support from the data, no action-gradient penalty, decay of
the free critic params), the toy xqc_od, sacfd and bc runs at the default `TOY_STEPS`, and the Lift runs as
below (csilpp re-run after that fix). Runs are deterministic on one machine: the 30,000-step runs repeat the
earlier 10,000-step ones evaluation for evaluation over their first 10,000 steps. With `--workers 2` on 2
otherwise idle cores: toy csil 7.5 min per 30,000 steps, toy csilpp 30-35 min (the whole set 75 min).

The first budgets were sized for about 75 minutes with `--workers 2` under `nice -n 5` on a 2-core machine shared
with other jobs (load average 9-17). Measured there per run: bc 1-2 min, csil 3-8, sacfd 3.5-7, xqc_od
8.5-15.5, csilpp 22-24+ (its BC + SARSA stage alone 3-9 min, then 4-5.5 min per 1,000 env steps at UTD 4).
The toy set took the whole window; the Lift runs did not fit in it. Jobs run seed-major (seed 0 of every
algorithm first; within a seed the costliest first), toy before Lift; a run is copied to the output only
once finished.

    python scripts/ch06_cpu_runs.py [--seeds 0 1 2] [--only toy lift] [--toy-algos ...] [--lift-algos ...]
                                    [--toy-steps N] [--out DIR] [--workers 2]
    python scripts/ch06_cpu_runs.py --report        # only the tables, from the stored runs

Only config.json, metrics.jsonl and summary.json are kept (checkpoints are large and not needed to plot). The
Lift runs store `demos_path` as the file's name (`LIFT_DEMOS_FILE`), not where this machine wrote it (a
temporary folder). At the end the script prints, per algorithm and seed, the first evaluated env step with
success >= `THRESHOLD` ("not reached" otherwise), the CSIL / CSIL++ ratio of the mean steps over seeds, and
the initial drop (a run's lowest success minus its step-0 success, i.e. its BC policy).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

TOY_TASK = "pointmass-obstacles"
TOY_ALGOS = ("bc", "csil", "csilpp", "xqc_od", "sacfd")
TOY_DEMOS = 10
THRESHOLD = 0.8
TOY_STEPS = 5_000
LIFT_ALGOS = ("csil", "csilpp")
LIFT_DEMOS = 10
LIFT_DEMOS_FILE = "lift_scripted_10.hdf5"
LIFT_STEPS = 2_000
LIFT_EVAL_EPISODES = 20
COST_ORDER = ("csilpp", "xqc_od", "csil", "sacfd", "bc")  # job order within a seed: the costliest first


def config(setting: str, algo: str, seed: int, demos_path: str | None = None, env_steps: int | None = None):
    """The preview preset of `algo` for `setting` ('toy' or 'lift') with this script's fields.

    `env_steps` defaults to the setting's budget (`TOY_STEPS` or `LIFT_STEPS`).
    """
    from csil_lite.configs import preset

    if setting == "toy":
        fields = dict(task=TOY_TASK, num_demos=TOY_DEMOS, env_steps=env_steps or TOY_STEPS, eval_every=1_000)
    elif setting == "lift":
        if demos_path is None:
            raise ValueError("config('lift', ...): demos_path (the scripted Lift demos file) is required")
        fields = dict(task="lift", demos_path=demos_path, num_demos=LIFT_DEMOS, env_steps=env_steps or LIFT_STEPS,
                      learning_starts=500, eval_every=1_000, eval_episodes=LIFT_EVAL_EPISODES)
    else:
        raise ValueError(f"unknown setting {setting!r}; expected 'toy' or 'lift'")
    if algo == "bc":  # nothing is learned online: one evaluation at the start and one at the end
        fields["eval_every"] = fields["env_steps"]
    return preset("preview", algo=algo, seed=seed, **fields)


def run(job: tuple[str, str, int, str, str | None, int]) -> str:
    """Train one run in a scratch folder, keep its three files, then copy it to `out/setting/algo_seed`."""
    from csil_lite.loop import train

    setting, algo, seed, out, demos_path, env_steps = job
    name = f"{algo}_{seed}"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ch06_run_") as scratch:
        run_dir = Path(scratch) / name
        summary = train(config(setting, algo, seed, demos_path, env_steps), run_dir, progress=False, resume=False)
        for bulky in ("checkpoints", "prepare"):  # the stored run is its three small files
            shutil.rmtree(run_dir / bulky, ignore_errors=True)
        if demos_path is not None:  # keep the file's name, not where this machine wrote it
            cfg = json.loads((run_dir / "config.json").read_text())
            cfg["demos_path"] = LIFT_DEMOS_FILE
            (run_dir / "config.json").write_text(json.dumps(cfg, indent=2))
        final = Path(out) / setting / name
        shutil.rmtree(final, ignore_errors=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(run_dir, final)
    return (f"{setting} {algo} seed {seed}: success {summary['initial_success_rate']:.2f} -> "
            f"{summary['final_success_rate']:.2f} ({time.perf_counter() - t0:.0f} s)")


def write_lift_demos(folder: Path) -> str:
    """10 scripted Lift demonstrations (seed 0) in a robomimic HDF5 file, as chapter 7 builds them."""
    from csil_lite.data.robomimic import write_dataset
    from csil_lite.data.scripted import generate_episodes
    from csil_lite.envs.robosuite import make

    env = make("lift", seed=0, obs="state")
    episodes, stats = generate_episodes("lift", LIFT_DEMOS, seed=0, env=env, progress=False,
                                        return_stats=True)
    print(f"scripted Lift expert: {stats.successes}/{stats.attempts} successes", flush=True)
    path = folder / LIFT_DEMOS_FILE
    write_dataset(path, episodes, env.env_args())
    return str(path)


def steps_to(rows: list[dict], threshold: float) -> int | None:
    """The first evaluated env step whose success rate is >= threshold, None if none is."""
    return next((r["step"] for r in rows if r["success_rate"] >= threshold), None)


def report(out: Path) -> None:
    """Print the steps-to-threshold table, the CSIL / CSIL++ ratio and the initial drops of stored runs."""
    from csil_lite.loop import read_metrics

    for setting, algos in (("toy", TOY_ALGOS), ("lift", LIFT_ALGOS)):
        folder = out / setting
        if not folder.is_dir():
            continue
        print(f"\n== {setting}: first evaluated env step with success >= {THRESHOLD} ==")
        print(f"{'algo':8s} " + " ".join(f"{'seed ' + str(s):>12s}" for s in (0, 1, 2))
              + "   start  min  final (mean over seeds)")
        mean_steps = {}
        for algo in algos:
            cells, starts, mins, finals, reached = [], [], [], [], []
            for seed in (0, 1, 2):
                run_dir = folder / f"{algo}_{seed}"
                if not (run_dir / "summary.json").exists():
                    cells.append("missing")
                    continue
                rows = read_metrics(run_dir)
                step = steps_to(rows, THRESHOLD)
                cells.append("not reached" if step is None else f"{step:,}")
                if step is not None:
                    reached.append(step)
                starts.append(rows[0]["success_rate"])
                mins.append(min(r["success_rate"] for r in rows))
                finals.append(rows[-1]["success_rate"])
            if not starts:
                continue
            n = len(starts)
            print(f"{algo:8s} " + " ".join(f"{c:>12s}" for c in cells)
                  + f"   {sum(starts) / n:.2f}  {sum(mins) / n:.2f}  {sum(finals) / n:.2f}"
                  + f"   initial drop (min - start) per seed: "
                  + " ".join(f"{m - s:+.2f}" for m, s in zip(mins, starts)))
            mean_steps[algo] = (reached, n)
        if "csil" in mean_steps and "csilpp" in mean_steps:
            (a, na), (b, nb) = mean_steps["csil"], mean_steps["csilpp"]
            print(f"reached: csil {len(a)}/{na} seeds, csilpp {len(b)}/{nb} seeds")
            if a and b:
                ma, mb = sum(a) / len(a), sum(b) / len(b)
                print(f"CSIL / CSIL++ mean steps to {THRESHOLD} (over the seeds that reached it): "
                      f"{ma:,.0f} / {mb:,.0f} = {ma / mb:.2f}")
            else:
                print("CSIL / CSIL++ ratio: undefined (one of them never reached the threshold)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", nargs="+", choices=["toy", "lift"], default=["toy", "lift"])
    ap.add_argument("--toy-algos", nargs="+", default=list(TOY_ALGOS))
    ap.add_argument("--lift-algos", nargs="+", default=list(LIFT_ALGOS))
    ap.add_argument("--out", default="book/_artefacts/ch06")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--toy-steps", type=int, default=TOY_STEPS, help="env steps of the toy runs")
    ap.add_argument("--report", action="store_true", help="only print the tables of the stored runs")
    args = ap.parse_args()
    out = Path(args.out)
    if not args.report:
        (out / "toy").mkdir(parents=True, exist_ok=True)  # what the chapter reads the threshold from
        (out / "toy" / "settings.json").write_text(json.dumps({"threshold": THRESHOLD, "num_demos": TOY_DEMOS}))
        workers = ProcessPoolExecutor(args.workers)
        with tempfile.TemporaryDirectory(prefix="ch06_demos_") as tmp, workers as pool:
            futures = []
            if "toy" in args.only:  # queued first; the Lift demos are written while they run
                futures += [pool.submit(run, ("toy", a, s, str(out), None, args.toy_steps))
                            for s in args.seeds for a in sorted(args.toy_algos, key=COST_ORDER.index)]
            if "lift" in args.only:
                demos_path = write_lift_demos(Path(tmp))
                futures += [pool.submit(run, ("lift", a, s, str(out), demos_path, LIFT_STEPS))
                            for s in args.seeds for a in sorted(args.lift_algos, key=COST_ORDER.index)]
            for fut in as_completed(futures):
                print(fut.result(), flush=True)
    report(out)


if __name__ == "__main__":
    main()

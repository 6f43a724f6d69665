"""Chapter 6's pre-registered test of CSIL++'s sample-efficiency claim, on a task where the learner is the bottleneck.

Issue 23's protocol, in the order it must run:

1. `--pilot`: on state-based Lift (10 scripted demonstrations written as chapter 7 builds them), BC alone over
   `PILOT_BC_EPISODES` episodes and one CSIL pilot run (seed 0) to `PILOT_STEPS` env steps, evaluated every
   `EVAL_EVERY` over `EVAL_EPISODES` episodes. The rule (`pilot_verdict`): go on with the task only if CSIL ends
   below `THRESHOLD` and is still rising (its last evaluation above the one `EVAL_EVERY` steps before);
   otherwise the next task, Can, by the same rule. The pilot's files go to `OUT/pilot/<task>/`.
2. `--write-settings TASK`: writes `OUT/settings.json` from `settings(TASK)` (arms, budget, seeds, metrics).
   It is committed *before* any run of step 3 (its commit precedes the results' commits).
3. `--run`: every arm x seed of the committed settings.json, each the preview preset of its algorithm with the
   arm's fields, stored small under `OUT/<arm>_<seed>/` (config.json, metrics.jsonl, summary.json); runs resume
   after an interruption (their checkpoints live in `--work` until a run finishes).
4. `--report`: the primary metric, the paired area under the success curve over 0-`ENV_STEPS`
   (`evaluation.success_auc`, per seed, CSIL++ arm minus CSIL on common seeds), and the secondary one, steps to
   `THRESHOLD` on a `SMOOTH`-evaluation moving average (">N" when never reached).

    python scripts/ch06_preregistered.py --pilot [--task lift]
    python scripts/ch06_preregistered.py --write-settings lift
    python scripts/ch06_preregistered.py --run [--workers 2] [--arms ...] [--seeds ...]
    python scripts/ch06_preregistered.py --report

The arms (`ARMS`): the `csil` and `csilpp` presets; CSIL++ with the paper's and XQC's options (return
normalisation on [-8, 0], the critic's learning rate 3e-4 -> 3e-5 without decay, tau 0.005, LayerNorm in the
policy trunk); and, if time allows, the paper's KL weights (CSIL 0.01, CSIL++ 0.3).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

OUT = Path("book/_artefacts/ch06/preregistered")
DEMOS = 10
THRESHOLD = 0.8
ENV_STEPS = 25_000
EVAL_EVERY = 2_500
EVAL_EPISODES = 50
LEARNING_STARTS = 500
SEEDS = (0, 1, 2)
SMOOTH = 3
PILOT_STEPS = 10_000
PILOT_BC_EPISODES = 50
TASKS = ("lift", "can")  # in the order the pilot rule tries them
PAPER_OPTIONS = {"agent": {"return_norm": "running_std", "critic_lr_final": 3e-5, "critic_weight_decay": 0.0,
                           "tau": 0.005},
                 "nets": {"critic_v_min": -8.0, "policy_layer_norm": True}}
ARMS = {
    "csil": ("csil", {}),
    "csilpp": ("csilpp", {}),
    "csilpp_paper_options": ("csilpp", PAPER_OPTIONS),
    "csil_beta_paper": ("csil", {"agent": {"beta": 0.01}}),
    "csilpp_beta_paper": ("csilpp", {"agent": {"beta": 0.3}}),
}
PRIMARY_ARMS = ("csil", "csilpp", "csilpp_paper_options")


def demos_file(task: str) -> str:
    return f"{task}_scripted_{DEMOS}.hdf5"


def config(task: str, arm: str, seed: int, demos_path: str, env_steps: int = ENV_STEPS):
    """The preview preset of the arm's algorithm on `task` with this protocol's fields and the arm's options."""
    from csil_lite.configs import preset

    algo, options = ARMS[arm]
    return preset("preview", algo=algo, seed=seed, task=task, demos_path=demos_path, num_demos=DEMOS,
                  env_steps=env_steps, learning_starts=LEARNING_STARTS, eval_every=EVAL_EVERY,
                  eval_episodes=EVAL_EPISODES, checkpoint_every=EVAL_EVERY,
                  agent=dict(options.get("agent", {})), nets=dict(options.get("nets", {})))


def settings(task: str) -> dict:
    """What is fixed before the test's runs: the task, arms, budget, seeds and the metrics, with each arm's
    configuration as a dict (the run directories' config.json must equal it, demos_path as the file's name)."""
    return {"task": task, "demos": DEMOS, "demos_file": demos_file(task), "env_steps": ENV_STEPS,
            "eval_every": EVAL_EVERY, "eval_episodes": EVAL_EPISODES, "learning_starts": LEARNING_STARTS,
            "seeds": list(SEEDS), "arms": {arm: config(task, arm, 0, demos_file(task)).to_dict() for arm in ARMS},
            "primary_arms": list(PRIMARY_ARMS),
            "primary_metric": f"paired area under the success curve over 0-{ENV_STEPS} env steps "
                              "(evaluation.success_auc), CSIL++ arm minus csil per common seed",
            "secondary_metric": f"env steps to success >= {THRESHOLD} on a {SMOOTH}-evaluation moving average "
                                f"(>{ENV_STEPS} when never reached)",
            "threshold": THRESHOLD, "smooth": SMOOTH}


def write_demos(task: str, folder: Path) -> str:
    """`DEMOS` scripted demonstrations (seed 0) of `task` in a robomimic HDF5 file."""
    from csil_lite.data.robomimic import write_dataset
    from csil_lite.data.scripted import generate_episodes
    from csil_lite.envs.robosuite import make

    env = make(task, seed=0, obs="state")
    episodes, stats = generate_episodes(task, DEMOS, seed=0, env=env, progress=False, return_stats=True)
    print(f"scripted {task} expert: {stats.successes}/{stats.attempts} successes", flush=True)
    path = folder / demos_file(task)
    write_dataset(path, episodes, env.env_args())
    return str(path)


def pilot_verdict(steps, success) -> tuple[bool, str]:
    """The pre-registered rule: go on with this task if CSIL ends below THRESHOLD and is still rising."""
    success = np.asarray(success, float)
    below, rising = bool(success[-1] < THRESHOLD), bool(len(success) > 1 and success[-1] > success[-2])
    why = (f"CSIL at {steps[-1]:,} steps: {success[-1]:.2f} ({'below' if below else 'not below'} {THRESHOLD}), "
           f"{'rising' if rising else 'not rising'} (previous {success[-2]:.2f})")
    return below and rising, why


def _finish(run_dir: Path, final: Path, task: str) -> None:
    for bulky in ("checkpoints", "prepare"):
        shutil.rmtree(run_dir / bulky, ignore_errors=True)
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["demos_path"] = demos_file(task)  # the file's name, not where this machine wrote it
    (run_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(run_dir, final)


def run_one(job: tuple[str, str, int, str, str, str, int]) -> str:
    """One run in `work/<name>` (resumed if it is there), its small files copied to `out/<name>` when finished."""
    from csil_lite.loop import train

    task, arm, seed, demos_path, work, out, env_steps = job
    name = f"{arm}_{seed}"
    t0 = time.perf_counter()
    summary = train(config(task, arm, seed, demos_path, env_steps), Path(work) / name, progress=False)
    _finish(Path(work) / name, Path(out) / name, task)
    return f"{task} {arm} seed {seed}: success {summary['initial_success_rate']:.2f} -> " \
           f"{summary['final_success_rate']:.2f} ({time.perf_counter() - t0:.0f} s)"


def pilot(task: str, work: Path, out: Path) -> None:
    """BC alone over PILOT_BC_EPISODES episodes and the CSIL pilot (seed 0, PILOT_STEPS); prints the verdict."""
    from csil_lite.configs import preset
    from csil_lite.loop import read_metrics, train

    work.mkdir(parents=True, exist_ok=True)
    demos_path = write_demos(task, work)
    bc = preset("preview", algo="bc", task=task, demos_path=demos_path, num_demos=DEMOS, env_steps=EVAL_EVERY,
                eval_every=EVAL_EVERY, eval_episodes=PILOT_BC_EPISODES, learning_starts=LEARNING_STARTS)
    bc_summary = train(bc, work / "bc_0", progress=False)
    _finish(work / "bc_0", out / "bc_0", task)
    print(f"BC on {task}: {bc_summary['initial_success_rate']:.2f} over {PILOT_BC_EPISODES} episodes", flush=True)
    print(run_one((task, "csil", 0, demos_path, str(work), str(out), PILOT_STEPS)), flush=True)
    rows = read_metrics(out / "csil_0")
    go, why = pilot_verdict([r["step"] for r in rows], [r["success_rate"] for r in rows])
    print(f"pilot verdict on {task}: {'go on' if go else 'next task'} ({why})")


def report(out: Path) -> None:
    """The table of arms x seeds and the paired differences (`csil_lite.report.paired_test`), as chapter 6 reads them."""
    from csil_lite.report import paired_table, paired_test

    test = paired_test(out)
    print(paired_table(test))
    if test.missing:
        print(f"not finished: {', '.join(f'{a}_{s}' for a, s in test.missing)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--work", default="runs/ch06_preregistered", help="where unfinished runs and demos live")
    ap.add_argument("--pilot", action="store_true")
    ap.add_argument("--task", choices=TASKS, default="lift", help="the pilot's task")
    ap.add_argument("--write-settings", choices=TASKS, default=None)
    ap.add_argument("--run", action="store_true")
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(PRIMARY_ARMS))
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    out, work = Path(args.out), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.pilot:
        pilot(args.task, work / "pilot" / args.task, out / "pilot" / args.task)
    if args.write_settings:
        out.mkdir(parents=True, exist_ok=True)
        (out / "settings.json").write_text(json.dumps(settings(args.write_settings), indent=2))
        print(f"wrote {out / 'settings.json'}: commit it before any run")
    if args.run:
        spec = json.loads((out / "settings.json").read_text())
        task = spec["task"]
        demos_path = work / demos_file(task)
        if not demos_path.exists():
            write_demos(task, work)
        jobs = [(task, arm, s, str(demos_path), str(work), str(out), spec["env_steps"])
                for s in args.seeds for arm in args.arms if not (out / f"{arm}_{s}" / "summary.json").exists()]
        with ProcessPoolExecutor(args.workers) as pool:
            for fut in as_completed([pool.submit(run_one, j) for j in jobs]):
                print(fut.result(), flush=True)
    if args.report:
        report(out)


if __name__ == "__main__":
    main()

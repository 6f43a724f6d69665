"""CPU runs of chapter 9 (fine-tuning a base policy), stored under book/_artefacts/ch09/ for the chapter to plot.

Two settings (`SETTINGS`), each with a stand-in base stored under book/_artefacts/base/ whose chunks of `CHUNK`
actions are executed open-loop, and a small policy learned from 10 scripted demonstrations:

- `toy`: pointmass-reach on the 1,000-step stand-in (alone it succeeds in about 0.7 of the episodes), 5,000 env
  steps, 50 evaluation episodes every 500;
- `can`: robosuite Can from states on the 10,000-step Can stand-in (alone about 0.65), 3,000 env steps (updates
  from 500, as chapter 7's robosuite runs), 20 evaluation episodes every 500; the demonstrations are written to a
  robomimic HDF5 file as chapter 7 builds them and `config.json` keeps the file's name (`demos_file`).

On top of the base, each method is an arm of the setting's sweep file (`sweeps/book_ch09_<setting>.toml`: the
preview preset of its algorithm with only the file's fields changed), seeds 0, 1 and 2:

- `base`: the base alone, re-evaluated as the runs' final evaluation is (`csil-lite evaluate --repeats 5`);
- `csilpp ensemble` (the paper's method), `xqc_od ensemble` and `xqc_od residual` (its baselines), and, on the
  toy task, `csilpp residual` (the thesis's composition).

Every run follows the paper's protocol: evaluation every `eval_every` steps for `eval_episodes` episodes, the best
parameters kept, re-evaluated 5 x `eval_episodes` at the end (final_eval.json); `--report` prints the
median [25th, 75th] table over seeds (`csil_lite.report`). The residual is the thesis's unbounded latent shift.
XQC+OD's residual starts at exactly the base (`residual_init_scale=0`, ResFiT's zero last layer): from its BC
start it executes far worse than the base (a smoke run on the toy task, seed 0: 0.32 against the base's 0.74;
with open-loop chunks the residual's BC target depends on the chunk phase, which the state does not show), and a
baseline that starts below the base would be a straw man. CSIL++'s residual starts from its BC fit, as the
thesis's does: its coherence (the actor equal to the BC prior the reward is built from) holds only there.
`--residual-scale` runs the peers' bounded form clip(a_b + s a_pi) instead.

    python scripts/ch09_cpu_runs.py [--setting toy|can] [--seeds 0 1 2] [--methods ...] [--out DIR] [--workers 2]
    python scripts/ch09_cpu_runs.py --setting can --report

Only config.json, metrics.jsonl, summary.json and final_eval.json are kept (checkpoints are large and not needed
to plot), under `out/<setting>/<method>_<seed>`. Jobs run seed-major, the costliest method first; a run is copied
to the output only once finished. Measured with `--workers 1` on an otherwise idle 2-core machine: the toy set
about 32 minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

CHUNK = 10
DEMOS = 10
REPEATS = 5
SWEEP_FILES = {setting: Path(__file__).resolve().parents[1] / "sweeps" / f"book_ch09_{setting}.toml"
               for setting in ("toy", "can")}  # the train runs' configurations
METHODS = ("csilpp ensemble", "csilpp residual", "xqc_od ensemble", "xqc_od residual", "base")
SETTINGS = {
    "toy": dict(task="pointmass-reach", base="book/_artefacts/base/pointmass-reach_1000", env_steps=5_000,
                eval_every=500, eval_episodes=50, demos_file=None, methods=METHODS),
    "can": dict(task="can", base="book/_artefacts/base/can_10000", env_steps=3_000, eval_every=500,
                eval_episodes=20, learning_starts=500, demos_file="can_scripted_10.hdf5",
                methods=("csilpp ensemble", "xqc_od ensemble", "xqc_od residual", "base")),
}


def config(setting: str, method: str, seed: int, env_steps: int | None = None, residual_scale: float | None = None,
           demos_path: str | None = None):
    """The run of `method` ("csilpp ensemble", ...) and `seed` in the setting's sweep file (`SWEEP_FILES`), the
    preview preset of the method's algorithm with the file's fields; `env_steps`, a residual's `residual_scale`
    and `demos_path` (robosuite settings; default the demonstrations file's name, as config.json stores it)
    override it."""
    from csil_lite.sweep import expand_file

    extra = [f"env_steps={env_steps}"] if env_steps else []
    if residual_scale is not None and method.endswith("residual"):
        extra.append(f"base.residual_scale={residual_scale}")
    if SETTINGS[setting]["demos_file"]:
        extra.append(f"demos_path={json.dumps(demos_path or SETTINGS[setting]['demos_file'])}")
    (run,) = expand_file(SWEEP_FILES[setting], extra, arms=[method.replace(" ", "_")], seeds=[seed])
    return run.config


def run(job: tuple[str, str, int, str, int, float | None, str | None]) -> str:
    """One run (or the base's evaluation) in a scratch folder, its small files copied to `out/<method>_<seed>`."""
    setting, method, seed, out, steps, residual_scale, demos_path = job
    s = SETTINGS[setting]
    name = f"{method.replace(' ', '_')}_{seed}"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ch09_run_") as scratch:
        run_dir = Path(scratch) / name
        if method == "base":
            from csil_lite.base.cli import evaluate_main

            evaluate_main(["--base", s["base"], "--task", s["task"], "--episodes", str(s["eval_episodes"]),
                           "--repeats", str(REPEATS), "--execute-steps", str(CHUNK), "--seed", str(seed),
                           "--out", str(run_dir)])
            what = "evaluated"
        else:
            from csil_lite.loop import train

            cfg = config(setting, method, seed, steps, residual_scale, demos_path)
            summary = train(cfg, run_dir, progress=False, resume=False)
            for bulky in ("checkpoints", "prepare"):
                shutil.rmtree(run_dir / bulky, ignore_errors=True)
            if demos_path is not None:  # keep the file's name, not where this machine wrote it
                stored = json.loads((run_dir / "config.json").read_text())
                stored["demos_path"] = s["demos_file"]
                (run_dir / "config.json").write_text(json.dumps(stored, indent=2))
            what = f"success {summary['initial_success_rate']:.2f} -> {summary['final_success_rate']:.2f}"
        final = Path(out) / name
        shutil.rmtree(final, ignore_errors=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(run_dir, final)
    rates = json.loads((final / "final_eval.json").read_text())["success_rates"]
    return f"{setting} {method} seed {seed}: {what}; final evaluations {rates} ({time.perf_counter() - t0:.0f} s)"


def write_demos(setting: str, folder: Path) -> str:
    """`DEMOS` scripted demonstrations (seed 0) of the setting's robosuite task in a robomimic HDF5 file."""
    from csil_lite.data.robomimic import write_dataset
    from csil_lite.data.scripted import generate_episodes
    from csil_lite.envs.robosuite import make

    s = SETTINGS[setting]
    env = make(s["task"], seed=0, obs="state")
    episodes, stats = generate_episodes(s["task"], DEMOS, seed=0, env=env, progress=False, return_stats=True)
    print(f"scripted {s['task']} expert: {stats.successes}/{stats.attempts} successes", flush=True)
    path = folder / s["demos_file"]
    write_dataset(path, episodes, env.env_args())
    return str(path)


def report(out: Path, setting: str) -> None:
    """The protocol table of the stored runs (median [25th, 75th] over seeds x final evaluations)."""
    from csil_lite.report import protocol_summary, protocol_table, read_final_eval

    records = [read_final_eval(d) for d in sorted(out.iterdir()) if (d / "final_eval.json").exists()]
    summary = protocol_summary(records)
    methods = SETTINGS[setting]["methods"]
    print(protocol_table(summary, methods=["base", *[m for m in methods if m != "base"]]))
    for (m, t), c in sorted(summary.items()):
        print(f"{m:18s} {t}: {c['seeds']} seeds, {c['evaluations']} evaluations")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", choices=SETTINGS, default="toy")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=None, help="default: the setting's")
    ap.add_argument("--steps", type=int, default=None, help="env steps of each run (default: the setting's)")
    ap.add_argument("--residual-scale", type=float, default=None, help="the peers' bounded residual instead")
    ap.add_argument("--out", default="book/_artefacts/ch09", help="the setting's runs go to OUT/<setting>/")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--report", action="store_true", help="only print the table of the stored runs")
    args = ap.parse_args()
    s = SETTINGS[args.setting]
    out = Path(args.out) / args.setting
    methods = args.methods or s["methods"]
    steps = args.steps or s["env_steps"]
    if not args.report:
        out.mkdir(parents=True, exist_ok=True)
        (out / "settings.json").write_text(json.dumps(
            {"setting": args.setting, "task": s["task"], "base": s["base"], "chunk": CHUNK, "num_demos": DEMOS,
             "env_steps": steps, "eval_every": s["eval_every"], "eval_episodes": s["eval_episodes"],
             "repeats": REPEATS, "residual_scale": args.residual_scale}, indent=2))
        with tempfile.TemporaryDirectory(prefix="ch09_demos_") as tmp, ProcessPoolExecutor(args.workers) as pool:
            demos_path = write_demos(args.setting, Path(tmp)) if s["demos_file"] else None
            futures = [pool.submit(run, (args.setting, m, seed, str(out), steps, args.residual_scale, demos_path))
                       for seed in args.seeds for m in s["methods"] if m in methods]
            for fut in as_completed(futures):
                print(fut.result(), flush=True)
    report(out, args.setting)


if __name__ == "__main__":
    main()

"""`csil-lite sweep`: a grid of ordinary `train` runs, dispatched on Ray or in a local process pool.

    csil-lite sweep --algos csil bc --tasks pointmass-reach --seeds 0 1 --preset preview \
        [--set FIELD=JSON ...] --out DIR [--local] [--workers 2] [--cpus 1] [--gpus 0]
    csil-lite sweep FILE.toml --out DIR

A sweep file holds the same fields (flags given as well override it):

    [sweep]
    algos = ["csil", "bc"]
    tasks = ["pointmass-reach"]
    seeds = [0, 1]
    preset = "preview"

    [set]                 # overrides for every run: RunConfig fields, agent.FIELD, nets.FIELD, base.FIELD, embed.FIELD
    env_steps = 2000
    "agent.beta" = 0.1

    [grid]                # every combination of these values is a variant of every run (a suffix names it)
    "base.compose" = ["ensemble", "residual"]

    [arms.csilpp_lr]      # instead of `algos`: named arms, each an algorithm with overrides of its own
    algo = "csilpp"       # (on top of [set]; `--arms NAME ...` picks some)
    "agent.critic_lr" = 1e-4

    [resources]           # what Ray reserves per run
    cpus = 1
    gpus = 0

    [report]              # `csil-lite report --sweep FILE OUT`: env steps to this success rate, per method
    threshold = 0.85
    smooth = 1            # ... on a trailing mean of this many evaluations

A string in [set] or an arm may name the run's task as `{task}` (`demos_path = "demos/{task}_200.hdf5"`). The
sweep files of the paper's figures and tables and of the book's stored runs are in `sweeps/` (chapter 11).

Every run is `loop.train(config, OUT/<name>[__variant])`, the name `[sweep] name` (default "{arm}_{task}_{seed}";
without [arms] an arm is its algorithm, so `csil_lift_0`), so a sweep is resumable exactly as a run is: a run
whose `summary.json` exists is skipped, an interrupted one resumes from its checkpoint. With `[sweep] store_small
= true` (or `--store-small`) a finished run keeps only its small files (config.json, metrics.jsonl, summary.json,
final_eval.json and logs: its checkpoints/ and prepare/ are removed), as the book stores runs. Ray (`pip install
csil-lite[sweep]`) starts a local cluster of `--workers` CPUs, or joins the cluster at `RAY_ADDRESS` when that is
set; `--local` runs the same grid in a process pool without Ray. A failing run is reported (and its error written
to `sweep_error.txt` in its directory) without stopping the others; the command exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import string
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple

from csil_lite.errors import ArgumentParser, UserError, check_output_path, int_at_least

SWEEP_KEYS = {"algos", "tasks", "seeds", "preset", "name", "store_small"}
DEFAULT_NAME = "{arm}_{task}_{seed}"
NAME_FIELDS = {"arm", "algo", "task", "seed"}
BULKY = ("checkpoints", "prepare")  # what `store_small` removes from a finished run


@dataclass(frozen=True)
class Job:
    """One run of a sweep: its name (the run directory's), config (as plain data) and directory; `tensorboard`:
    also log its evaluations as TensorBoard scalars in RUN_DIR/tensorboard."""
    name: str
    config: dict
    run_dir: str
    tensorboard: bool = False
    wandb: bool = False  # an offline W&B run in RUN_DIR/wandb
    store_small: bool = False  # once finished, remove its checkpoints/ and prepare/


class Run(NamedTuple):
    """One run of a grid: its name (its directory's), its arm (the algorithm without [arms]), its config and its
    variant's suffix ("" without [grid])."""
    name: str
    arm: str
    config: Any  # RunConfig
    variant: str = ""


@dataclass
class Outcome:
    name: str
    status: str  # "done" (ran now), "skipped" (finished before), "failed"
    seconds: float = 0.0
    error: str = ""
    summary: dict = field(default_factory=dict)


def _variants(vary: dict[str, list] | None) -> list[tuple[str, dict[str, Any]]]:
    """(name suffix, overrides) for every combination of the `vary` fields' values (one empty variant without)."""
    if not vary:
        return [("", {})]
    for key, values in vary.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"sweep: [grid] {key} must be a non-empty list of values, got {values!r}")
    out = []
    for combo in itertools.product(*vary.values()):
        tag = "__".join(f"{k.split('.')[-1]}-{v}" for k, v in zip(vary, combo))
        out.append(("__" + "".join(c if c.isalnum() or c in "-._" else "_" for c in tag), dict(zip(vary, combo))))
    return out


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"agent.beta": 0.1, "env_steps": 5} -> {"agent": {"beta": 0.1}, "env_steps": 5}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        group, _, name = key.rpartition(".")
        if group:
            out.setdefault(group, {})[name] = value
        else:
            out[key] = value
    return out


def _check_name(template: str) -> None:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as err:
        raise UserError(f"sweep: name {template!r}: {err}") from err
    if fields - NAME_FIELDS or "seed" not in fields:
        raise UserError(f"sweep: name {template!r} may use only {{{'}, {'.join(sorted(NAME_FIELDS))}}} and must "
                        "use {seed}")


def _arm_overrides(arms: dict[str, dict] | None, algos: Iterable[str] | None) -> dict[str, tuple[str, dict]]:
    """{arm: (algo, overrides)}: a sweep file's [arms] (each a table with `algo` and FIELD = value overrides,
    keys as in [set]), or one arm per algorithm without overrides."""
    from csil_lite.train import parse_overrides

    if arms and algos:
        raise UserError("sweep: give either algos or [arms] (each arm names its algo), not both")
    if not arms:
        return {a: (a, {}) for a in algos or ()}
    out = {}
    for name, table in arms.items():
        if not isinstance(table, dict) or not isinstance(table.get("algo"), str):
            raise UserError(f"sweep: [arms.{name}] needs algo = \"NAME\" (and optional FIELD = value overrides)")
        items = [f"{k}={json.dumps(v)}" for k, v in table.items() if k != "algo"]
        try:
            overrides, _ = parse_overrides(items)
        except UserError as err:
            raise UserError(f"sweep: [arms.{name}]: {err}") from err
        out[name] = (table["algo"], overrides)
    return out


def _merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Overrides applied in order; a group's (agent, nets, ...) fields merge, a top-level field is replaced."""
    from csil_lite.train import GROUPS

    out: dict[str, Any] = {}
    for layer in layers:
        for k, v in layer.items():
            out[k] = {**out.get(k, {}), **v} if k in GROUPS else v
    return out


def expand(algos: Iterable[str] | None, tasks: Iterable[str], seeds: Iterable[int], *, preset_name: str = "preview",
           overrides: dict[str, Any] | None = None, vary: dict[str, list] | None = None,
           arms: dict[str, dict] | None = None, name: str = DEFAULT_NAME) -> list[Run]:
    """Every arm x task x seed x variant as a `Run`, each the preset of its arm's algorithm with the shared
    overrides, then the arm's, then the variant's.

    `arms` (a sweep file's [arms]): {arm: {"algo": ..., FIELD: value}}; without it every algorithm of `algos` is
    an arm of that name. `vary` (a sweep file's [grid]): field -> list of values; every combination is a variant,
    named by a suffix (`csilpp_lift_0__compose-residual`). `name`: the run's name from {arm}, {algo}, {task},
    {seed}. A string override may name the run's task as `{task}` (`demos_path = "demos/{task}_200.hdf5"`)."""
    from csil_lite.configs import preset
    from csil_lite.train import GROUPS

    _check_name(name)
    per_arm = _arm_overrides(arms, algos)
    out = []
    for arm, (algo, arm_over) in per_arm.items():
        for task in tasks:
            for seed in seeds:
                for suffix, variant in _variants(vary):
                    over = _merge(overrides or {}, arm_over, _nest(variant))
                    over = {k: ({f: (x.format(task=task) if isinstance(x, str) else x) for f, x in v.items()}
                                if k in GROUPS else (v.format(task=task) if isinstance(v, str) else v))
                            for k, v in over.items()}
                    run = name.format(arm=arm, algo=algo, task=task, seed=seed) + suffix
                    try:
                        cfg = preset(preset_name, algo=algo, task=task, seed=int(seed), **over)
                    except (ValueError, TypeError, KeyError) as err:
                        raise UserError(f"sweep run {run}: {err}") from err
                    out.append(Run(run, arm, cfg, suffix))
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        raise UserError(f"sweep: repeated runs in the grid ({', '.join(sorted({n for n in names if names.count(n) > 1}))})")
    if not out:
        raise UserError("sweep: the grid is empty (no algos or arms, tasks or seeds)")
    return out


def grid(algos: Iterable[str] | None, tasks: Iterable[str], seeds: Iterable[int], **kwargs: Any
         ) -> list[tuple[str, "RunConfig"]]:  # noqa: F821
    """(name, RunConfig) of every run of `expand(algos, tasks, seeds, **kwargs)`."""
    return [(r.name, r.config) for r in expand(algos, tasks, seeds, **kwargs)]


def jobs_for(runs: list[tuple[str, Any]], out: str | Path, *, tensorboard: bool = False,
             wandb: bool = False, store_small: bool = False) -> list[Job]:
    pairs = [(r.name, r.config) if isinstance(r, Run) else r for r in runs]  # `expand`'s runs or (name, config)
    return [Job(name, cfg.to_dict(), str(Path(out) / name), tensorboard, wandb, store_small) for name, cfg in pairs]


def finished(job: Job) -> bool:
    return (Path(job.run_dir) / "summary.json").exists()


def run_job(job: Job) -> Outcome:
    """`train` on the job's config and directory (resuming it); an exception becomes a failed outcome."""
    from csil_lite.config import RunConfig
    from csil_lite.loop import train

    from csil_lite.run_logs import eval_log

    t0 = time.perf_counter()
    try:
        with eval_log(job.run_dir, job.tensorboard, job.wandb, job.config) as log:
            summary = train(RunConfig.from_dict(job.config), job.run_dir, progress=False, on_eval=log)
    except Exception as err:  # noqa: BLE001 - reported per run; the sweep goes on
        msg = f"{type(err).__name__}: {err}"
        Path(job.run_dir).mkdir(parents=True, exist_ok=True)
        (Path(job.run_dir) / "sweep_error.txt").write_text(msg + "\n")
        return Outcome(job.name, "failed", time.perf_counter() - t0, error=msg)
    if job.store_small:  # the stored run is its small files
        for bulky in BULKY:
            shutil.rmtree(Path(job.run_dir) / bulky, ignore_errors=True)
    keep = ("env_steps", "updates", "completed", "initial_success_rate", "final_success_rate")
    return Outcome(job.name, "done", time.perf_counter() - t0, summary={k: summary.get(k) for k in keep})


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    """A pool worker's initializer: a daemon thread ends the worker once its parent is gone (a killed sweep
    leaves no orphan training into a run directory the next sweep will resume)."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def pool(workers: int) -> ProcessPoolExecutor:
    """The local backend's process pool: spawned workers (a forked child of a process that has run JAX can
    deadlock) that end with the sweep's process."""
    return ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_exit_with_parent,
                               initargs=(os.getpid(),))


def _local(jobs: list[Job], workers: int, report: Callable[[Outcome], None]) -> None:
    with pool(workers) as pool_:
        for fut in as_completed([pool_.submit(run_job, j) for j in jobs]):
            report(fut.result())


def _ray(jobs: list[Job], workers: int, cpus: float, gpus: float, report: Callable[[Outcome], None]) -> None:
    try:
        import ray
    except ImportError as err:
        raise UserError("sweep: Ray is not installed; `pip install csil-lite[sweep]`, or pass --local") from err
    address = os.environ.get("RAY_ADDRESS")
    started = not ray.is_initialized()
    if started:
        kwargs = dict(address=address) if address else dict(num_cpus=workers, num_gpus=0 if not gpus else None)
        ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
    try:
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_job)
        pending = {remote.remote(j): j for j in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            try:
                report(ray.get(done[0]))
            except Exception as err:  # noqa: BLE001 - the worker died (killed, out of memory)
                report(Outcome(job.name, "failed", error=f"{type(err).__name__}: {err}"))
    finally:
        if started:
            ray.shutdown()


def run_sweep(jobs: list[Job], *, backend: str = "ray", workers: int = 2, cpus: float = 1.0, gpus: float = 0.0,
              progress: bool = True) -> list[Outcome]:
    """Every unfinished job on `backend` ("ray" or "local"); finished ones are skipped. Returns one outcome each."""
    from tqdm.auto import tqdm

    if backend not in ("ray", "local"):
        raise UserError(f"sweep: unknown backend {backend!r}; expected 'ray' or 'local'")
    outcomes = [Outcome(j.name, "skipped") for j in jobs if finished(j)]
    todo = [j for j in jobs if not finished(j)]
    bar = tqdm(total=len(jobs), initial=len(outcomes), desc="sweep runs", disable=not progress)

    def report(o: Outcome) -> None:
        outcomes.append(o)
        bar.update()
        failed = sum(x.status == "failed" for x in outcomes)
        bar.set_postfix(running=len(jobs) - len(outcomes), failed=failed)
        line = (f"{o.name}: {o.status} in {o.seconds:.0f} s" + (f" ({o.error})" if o.error else "")
                + (f", success {o.summary['initial_success_rate']:.2f} -> {o.summary['final_success_rate']:.2f}"
                   if o.summary.get("final_success_rate") is not None else ""))
        bar.write(line)

    try:
        if todo:
            (_ray(todo, workers, cpus, gpus, report) if backend == "ray" else _local(todo, workers, report))
    finally:
        bar.close()
    order = {j.name: i for i, j in enumerate(jobs)}
    return sorted(outcomes, key=lambda o: order[o.name])


def read_sweep_file(path: str | Path) -> dict[str, Any]:
    """The sweep file's [sweep], [set], [grid], [arms], [resources] and [report] tables, checked for unknown keys
    ([report]: `threshold` and `smooth` of `csil-lite report --sweep FILE`'s steps-to-threshold table)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"sweep file {str(p)!r} does not exist")
    try:
        spec = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"sweep file {str(p)!r}: {err}") from err
    unknown = set(spec) - {"sweep", "set", "grid", "arms", "resources", "report"}
    if unknown:
        raise UserError(f"sweep file {str(p)!r}: unknown tables {sorted(unknown)}; expected [sweep], [set], "
                        "[grid], [arms], [resources], [report]")
    from csil_lite.train import GROUPS

    for key in spec.get("grid", {}):
        group = key.rpartition(".")[0]
        if group and group not in GROUPS:
            raise UserError(f"sweep file {str(p)!r}: [grid] {key}: unknown section {group!r}; expected one of "
                            f"{sorted(GROUPS)}")
    bad = set(spec.get("sweep", {})) - SWEEP_KEYS
    if bad:
        raise UserError(f"sweep file {str(p)!r}: unknown [sweep] keys {sorted(bad)}; expected {sorted(SWEEP_KEYS)}")
    if spec.get("arms") and spec.get("sweep", {}).get("algos"):
        raise UserError(f"sweep file {str(p)!r}: [sweep] algos and [arms] both given; each arm names its algo")
    bad = set(spec.get("report", {})) - {"threshold", "smooth"}
    if bad:
        raise UserError(f"sweep file {str(p)!r}: unknown [report] keys {sorted(bad)}; expected threshold, smooth")
    bad = set(spec.get("resources", {})) - {"cpus", "gpus"}
    if bad:
        raise UserError(f"sweep file {str(p)!r}: unknown [resources] keys {sorted(bad)}; expected cpus, gpus")
    return spec


def expand_file(path: str | Path | None, extra_set: Iterable[str] = (), **flags: Any) -> list[Run]:
    """The runs of sweep file `path` (None: flags only); `flags` (algos, arms, tasks, seeds, preset) and
    `extra_set` ("FIELD=JSON" items) override the file's, as `csil-lite sweep FILE --algos ... --set ...` does;
    `arms` picks some of the file's [arms] by name."""
    from csil_lite.train import parse_overrides

    spec = read_sweep_file(path) if path else {}
    sw, arms = spec.get("sweep", {}), spec.get("arms")
    if flags.get("arms"):
        if not arms:
            raise UserError("sweep: --arms picks arms of a sweep file's [arms] table; this sweep has none")
        unknown = [a for a in flags["arms"] if a not in arms]
        if unknown:
            raise UserError(f"sweep: no arm {', '.join(unknown)}; the file's arms: {', '.join(arms)}")
        arms = {a: arms[a] for a in flags["arms"]}
    if arms and flags.get("algos"):
        raise UserError("sweep: this sweep file names arms ([arms]); pick them with --arms, not --algos")
    picked = {k: flags.get(k) or sw.get(k) for k in ("algos", "tasks", "seeds")}
    missing = [n for n, v in picked.items() if not v and not (n == "algos" and arms)]
    if missing:
        raise UserError(f"sweep: no {', '.join(missing)}; pass --{' --'.join(missing)} or a sweep file with them")
    items = [f"{k}={json.dumps(v)}" for k, v in spec.get("set", {}).items()] + list(extra_set)
    overrides, _ = parse_overrides(items)
    return expand(None if arms else picked["algos"], picked["tasks"], picked["seeds"],
                  preset_name=flags.get("preset") or sw.get("preset", "preview"), overrides=overrides,
                  vary=spec.get("grid"), arms=arms, name=sw.get("name", DEFAULT_NAME))


def runs_of_file(path: str | Path | None, extra_set: Iterable[str] = (), **flags: Any
                 ) -> list[tuple[str, "RunConfig"]]:  # noqa: F821
    """(name, RunConfig) of every run of `expand_file(path, extra_set, **flags)`."""
    return [(r.name, r.config) for r in expand_file(path, extra_set, **flags)]


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="csil-lite sweep", description=__doc__.split("\n")[0])
    p.add_argument("file", nargs="?", default=None, help="a sweep file (TOML); flags given as well override it")
    p.add_argument("--algos", nargs="+", default=None)
    p.add_argument("--arms", nargs="+", default=None, help="only these arms of the sweep file's [arms]")
    p.add_argument("--tasks", nargs="+", default=None)
    p.add_argument("--seeds", nargs="+", type=int_at_least(0), default=None)
    p.add_argument("--preset", default=None, help="budget of every run: preview, reference or paper")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                   help="override a config field of every run (as `csil-lite train --set`)")
    p.add_argument("--out", required=True, help="the sweep's directory: one run directory per run")
    p.add_argument("--local", action="store_true", help="a local process pool instead of Ray")
    p.add_argument("--workers", type=int_at_least(1), default=2, help="parallel runs (a local Ray's CPUs)")
    p.add_argument("--cpus", type=float, default=None, help="CPUs Ray reserves per run (default 1)")
    p.add_argument("--gpus", type=float, default=None, help="GPUs (or a fraction) Ray reserves per run")
    p.add_argument("--store-small", action="store_true",
                   help="a finished run keeps only its small files (no checkpoints/, prepare/), as the book stores")
    p.add_argument("--dry-run", action="store_true", help="list the runs and what is finished; run nothing")
    p.add_argument("--wandb", action="store_true",
                   help="also log each run's evaluations to an offline W&B run in RUN_DIR/wandb")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log each run's evaluations as TensorBoard scalars in RUN_DIR/tensorboard")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    spec = read_sweep_file(args.file) if args.file else {}
    res = spec.get("resources", {})
    check_output_path("--out", args.out, directory=True)
    runs = runs_of_file(args.file, args.set, algos=args.algos, arms=args.arms, tasks=args.tasks, seeds=args.seeds,
                        preset=args.preset)
    jobs = jobs_for(runs, args.out, tensorboard=args.tensorboard, wandb=args.wandb,
                    store_small=args.store_small or bool(spec.get("sweep", {}).get("store_small", False)))
    if args.dry_run:
        for j in jobs:
            print(f"{j.name}: {'finished' if finished(j) else 'to run'}")
        return 0
    outcomes = run_sweep(jobs, backend="local" if args.local else "ray", workers=args.workers,
                         cpus=args.cpus if args.cpus is not None else res.get("cpus", 1.0),
                         gpus=args.gpus if args.gpus is not None else res.get("gpus", 0.0))
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    print(f"sweep {args.out}: {counts['done']} ran, {counts['skipped']} already finished, {counts['failed']} failed")
    return 1 if counts["failed"] else 0

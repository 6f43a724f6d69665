"""Chapter 10's longer runs, stored small under book/_artefacts/ch10/ for the chapter to plot beside its preview.

Three experiments (every run resumable in --work; the stored JSON holds numbers only):

- `end_to_end`: CSIL (the preview preset, 10 demonstrations, 20,000 env steps) on pointmass-obstacles with the
  policy and the critic seeing the state, a 256-d synthetic embedding of it (64 linear signal coordinates, 192 of
  a 32-d nuisance drawn afresh at every observation), and that embedding through two remedies (whitening by the
  nuisance covariance; the discriminant projection onto 16 directions). For each: the BC policy's entropy gap on
  its own stochastic rollouts (`collapse.bc_policy_gap`) and the success curve (step 0 = BC).
- `standin`: the BC policy's gap when it sees the stand-in base policy's action-expert activations (chapter 9's
  stand-in, its flow noise drawn afresh at every observation) instead of the state, with and without the remedies,
  on pointmass-reach (stand-in book/_artefacts/base/pointmass-reach_10000, 25 demonstrations) and, with `--lift`,
  on Lift (book/_artefacts/base/lift_10000, 10 scripted demonstrations made here, 20 evaluation episodes, the
  whitening remedy left out).
- `dims`: the thesis's Fig. 6.5 on chapter 10's strip task: the gap of the BC policy against the embedding's
  dimension D (8 signal coordinates, D - 8 nuisance) with and without the state appended as an oracle (scale 32),
  at the chapter's preview sizes, seeds 0-4.

    python scripts/ch10_runs.py [--parts end_to_end standin dims] [--lift] [--seeds 0 1 2] [--workers 2]
        [--work DIR] [--out book/_artefacts/ch10]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = {"kind": "synthetic"}  # EmbedConfig's defaults: 256-d, 64 linear signal coordinates, 32-d nuisance
END_TO_END = {
    "state": {},
    "embedding": SYNTHETIC,
    "embedding + whitening": {**SYNTHETIC, "remedy": "whiten"},
    "embedding + discriminant": {**SYNTHETIC, "remedy": "discriminant"},
}
END_TO_END_RUN = dict(task="pointmass-obstacles", num_demos=10, env_steps=20_000, eval_every=2_000)
STANDIN_RUN = dict(learn_online=False, env_steps=100, eval_every=100)  # BC, its gap and its success only
STANDINS = {"pointmass-reach": "pointmass-reach_10000", "lift": "lift_10000"}
DIMS = (8, 16, 32, 64, 128, 256, 512, 1024)
DIMS_BC = dict(steps=400, hidden=(64, 64), n_demo=512)  # chapter 10's preview sizes
DIMS_SEEDS = (0, 1, 2, 3, 4)


def standin_inputs(task: str) -> dict[str, dict]:
    source = str(ROOT / "book" / "_artefacts" / "base" / STANDINS[task])
    si = {"kind": "standin", "source": source}
    return {"state": {}, "stand-in activations": si, "stand-in + whitening": {**si, "remedy": "whiten"},
            "stand-in + discriminant": {**si, "remedy": "discriminant"}}


def inputs_of(part: str) -> dict[str, dict]:
    """The named inputs (EmbedConfig fields) of one stored part."""
    return END_TO_END if part == "end_to_end" else standin_inputs(part.removeprefix("standin_"))


def run(job: tuple[str, str, dict, int, dict, str]) -> tuple[str, str, int, dict]:
    """One run (cached in its directory as result.json)."""
    from csil_lite.collapse import csil_from_embedding

    part, name, embed, seed, overrides, work = job
    run_dir = Path(work) / part / f"{name.replace(' ', '').replace('+', '_')}_{seed}"
    done = run_dir / "result.json"
    if done.exists():
        return part, name, seed, json.loads(done.read_text())
    t0 = time.perf_counter()
    try:
        result = csil_from_embedding(embed, run_dir, seed=seed, **overrides)
    except Exception as err:  # noqa: BLE001 - a run that fails (diverges) is a result: stored, not hidden
        from csil_lite.loop import read_metrics

        rows = read_metrics(run_dir) if (run_dir / "metrics.jsonl").exists() else []
        gap = json.loads((run_dir / "gap.json").read_text()) if (run_dir / "gap.json").exists() else None
        result = {"gap": gap, "steps": [r["step"] for r in rows], "success": [r["success_rate"] for r in rows],
                  "failed": f"{type(err).__name__}: {err}"}
    result["seconds"] = time.perf_counter() - t0
    done.write_text(json.dumps(result))
    return part, name, seed, result


def dims_run(job: tuple[int, float | None, int]) -> tuple[int, float | None, int, dict]:
    from csil_lite.collapse import gap_run

    dim, oracle, seed = job
    return dim, oracle, seed, gap_run(dim, seed=seed, oracle_scale=oracle, **DIMS_BC)._asdict()


def dims_part(out: Path, workers: int) -> None:
    jobs = [(d, o, s) for d in DIMS for o in (None, 32.0) for s in DIMS_SEEDS]
    rows = []
    with ProcessPoolExecutor(workers) as pool:
        for dim, oracle, seed, r in pool.map(dims_run, jobs):
            rows.append({"dim": dim, "oracle_scale": oracle, "seed": seed, **r})
            print(f"dims D={dim:4d} oracle {oracle} seed {seed}: gap {r['gap']:+.2f}, rho(x) {r['nn_input']:.2f}",
                  flush=True)
    (out / "dims.json").write_text(json.dumps({"bc": DIMS_BC, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out / 'dims.json'}")


def lift_demos(work: Path, n: int = 10) -> str:
    from csil_lite.cli import main as cli

    path = work / f"lift_scripted_{n}.hdf5"
    if not path.exists():
        cli(["demos", "generate", "--task", "lift", "--n", str(n), "--out", str(path), "--quiet"])
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=["end_to_end", "standin", "dims"],
                    choices=["end_to_end", "standin", "dims"])
    ap.add_argument("--lift", action="store_true", help="the stand-in part on Lift too (robosuite)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", default="ch10_work", help="run directories (resumable; not stored)")
    ap.add_argument("--out", default=str(ROOT / "book" / "_artefacts" / "ch10"))
    args = ap.parse_args()
    work = Path(args.work)
    jobs = []
    if "end_to_end" in args.parts:
        jobs += [("end_to_end", name, embed, s, END_TO_END_RUN, str(work))
                 for name, embed in END_TO_END.items() for s in args.seeds]
    if "standin" in args.parts:
        tasks = {"pointmass-reach": {}}
        if args.lift:  # 20 evaluation episodes (a robosuite episode is slow), no whitening (it did not help above)
            tasks["lift"] = {"demos_path": lift_demos(work), "num_demos": 10, "eval_episodes": 20}
        for task, extra in tasks.items():
            jobs += [(f"standin_{task}", name, embed, s, {**STANDIN_RUN, "task": task, **extra}, str(work))
                     for name, embed in standin_inputs(task).items() for s in args.seeds
                     if not (task == "lift" and "whitening" in name)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if "dims" in args.parts:
        dims_part(out, args.workers)
    results: dict[str, dict[str, dict[str, dict]]] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for part, name, seed, result in pool.map(run, jobs):
            results.setdefault(part, {}).setdefault(name, {})[str(seed)] = result
            gap, succ = result["gap"] or {}, result["success"]
            print(f"{part:24s} {name:26s} seed {seed}: gap {gap.get('gap', float('nan')):+.2f} (in sample "
                  f"{gap.get('gap_in_sample', float('nan')):+.2f}), rho(x) {gap.get('nn_input', float('nan')):.2f}, "
                  f"success {succ[0] if succ else float('nan'):.2f} -> {succ[-1] if succ else float('nan'):.2f}"
                  + (f"  FAILED: {result['failed']}" if "failed" in result else ""), flush=True)
    for part, by_name in results.items():
        overrides = jobs[[j[0] for j in jobs].index(part)][4]
        stored = {"run": {k: v for k, v in overrides.items() if k != "demos_path"},
                  "inputs": {name: {k: v for k, v in inputs_of(part)[name].items() if k != "source"}
                             for name in by_name},
                  "results": by_name}
        (out / f"{part}.json").write_text(json.dumps(stored, indent=1) + "\n")
        print(f"wrote {out / f'{part}.json'}")


if __name__ == "__main__":
    main()

"""A 4-run toy sweep: one run after another vs on Ray locally (and vs the local process pool), wall time and Ray's
overhead per run.

The grid is 2 algorithms (csil, bc) x 2 seeds on pointmass-reach at a small preview budget. Each backend writes
its own sweep directory from scratch (a fresh temporary folder, and a fresh JAX compilation cache, so no backend
profits from another's compilations). Printed:

* wall time of each backend and the speed-up of Ray (and of the pool) over the sequential runs (goal >= 1.8x on 2
  cores);
* Ray's overhead per run: (Ray's wall time x workers - the runs' own seconds on Ray) / runs, i.e. worker time
  not spent inside `train` (cluster start and shutdown, scheduling, worker imports), spread over the runs.

    python benchmarks/sweep_speedup.py [--workers 2] [--env-steps 1000]

Measured on this project's 2-core machine (nothing else running): 1,000 env steps: sequential 70.8 s, Ray 50.3 s
(1.41x), pool 47.1 s (1.50x); 3,000 env steps: 102.9 s, 70.7 s (1.46x), 65.4 s (1.57x); Ray's overhead 2.8-3.4 s
of worker time per run. The goal of 1.8x is not reached because one run alone already keeps more than one core
busy: a CSIL run takes 38.8 s alone and 48-49 s beside another (XLA's intra-op threads in the batched updates
and evaluations), which bounds two workers at about 1.6x here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
from csil_lite.sweep import grid, jobs_for, run_sweep, run_job
backend, out, workers, env_steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
runs = grid(["csil", "bc"], ["pointmass-reach"], [0, 1], overrides={"env_steps": env_steps, "eval_every": env_steps // 2,
            "eval_episodes": 5})
jobs = jobs_for(runs, out)
t0 = time.perf_counter()
if backend == "sequential":
    outcomes = [run_job(j) for j in jobs]
else:
    outcomes = run_sweep(jobs, backend=backend, workers=workers, progress=False)
wall = time.perf_counter() - t0
assert all(o.status == "done" for o in outcomes), outcomes
print(json.dumps({"wall": wall, "run_seconds": [o.seconds for o in outcomes]}))
"""


def measure(backend: str, workers: int, env_steps: int) -> dict:
    import json
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(Path(tmp) / "jax-cache"), "RAY_USAGE_STATS_ENABLED": "0"}
        env.pop("RAY_ADDRESS", None)
        out = subprocess.run([sys.executable, "-c", CHILD, backend, str(Path(tmp) / "out"), str(workers),
                              str(env_steps)], capture_output=True, text=True, env=env, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--env-steps", type=int, default=1000)
    args = ap.parse_args()
    res = {}
    for backend in ("sequential", "ray", "local"):
        t = time.perf_counter()
        res[backend] = measure(backend, args.workers, args.env_steps)
        print(f"{backend:10s} wall {res[backend]['wall']:7.1f} s  runs "
              f"{' '.join(f'{s:.1f}' for s in res[backend]['run_seconds'])} s  (process {time.perf_counter() - t:.0f} s)",
              flush=True)
    seq = res["sequential"]["wall"]
    for backend in ("ray", "local"):
        print(f"speed-up of {backend} over sequential on {args.workers} workers: {seq / res[backend]['wall']:.2f}x")
    ray = res["ray"]
    n = len(ray["run_seconds"])
    overhead = (ray["wall"] * args.workers - sum(ray["run_seconds"])) / n
    print(f"Ray's overhead per run: {overhead:.1f} s of worker time (cluster start/stop, scheduling, imports)")


if __name__ == "__main__":
    main()

"""Cost of the gymnasium wrapper over raw robosuite stepping (target: at most 10 % per step).

The wrapper adds action checks, one `mj_forward` and a forced low-dim sensor refresh (so observations match the
saved MuJoCo state), the robomimic renaming and the flattening. Both loops use the same robosuite kwargs and
the same pre-drawn random actions; the best of `--repeats` timings is reported for each.

    python benchmarks/bench_robosuite_overhead.py [--task square] [--steps 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--task", default="square")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    import robosuite

    from csil_lite.envs.robosuite import TASKS, make

    env = make(args.task, seed=0, horizon=10**6)
    raw = robosuite.make(TASKS[args.task].env_name, **{**env.env_kwargs, "horizon": 10**6})
    actions = np.random.default_rng(0).uniform(-1, 1, (args.steps, 7)) * 0.3

    def run_raw() -> float:
        raw.reset()
        t0 = time.perf_counter()
        for a in actions:
            raw.step(a)
        return (time.perf_counter() - t0) / args.steps

    def run_wrapped() -> float:
        env.reset(seed=0)
        t0 = time.perf_counter()
        for a in actions:
            env.step(a)
        return (time.perf_counter() - t0) / args.steps

    run_raw(), run_wrapped()  # warm-up (numba JIT, caches)
    t_raw, t_wrap = [], []
    for _ in range(args.repeats):  # interleave so background load hits both alike
        t_raw.append(run_raw())
        t_wrap.append(run_wrapped())
    r, w = min(t_raw), min(t_wrap)
    print(f"task {args.task}, {args.steps} steps x {args.repeats} repeats (best of)")
    print(f"raw robosuite      {1e3 * r:.3f} ms/step ({1 / r:.0f} steps/s)")
    print(f"csil_lite wrapper  {1e3 * w:.3f} ms/step ({1 / w:.0f} steps/s)")
    print(f"overhead           {100 * (w / r - 1):+.1f} %  (target <= 10 %)")


if __name__ == "__main__":
    main()

"""Scripted-expert success rates and the MimicGen-style yield, the numbers the demo datasets rest on.

Acceptance: Lift >= 95 %, Can >= 90 %, Square >= 90 % over >= 100 attempts each; MimicGen must reach 200
successful Square demos from <= 10 scripted source demos (the attempt count is printed).

    python benchmarks/bench_demo_generation.py                       # 100 attempts per task, 200 MimicGen demos
    python benchmarks/bench_demo_generation.py --episodes 10 --mimicgen-n 20   # quick look
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--episodes", type=int, default=100, help="scripted attempts per task")
    p.add_argument("--tasks", nargs="+", default=["lift", "can", "square"])
    p.add_argument("--mimicgen-n", type=int, default=200, help="MimicGen demos to generate (0: skip)")
    p.add_argument("--sources", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from csil_lite.data import mimicgen, scripted

    targets = {"lift": 0.95, "can": 0.90, "square": 0.90}
    for task in args.tasks:
        t0 = time.perf_counter()
        st = scripted.success_rate(task, args.episodes, seed=args.seed, progress=False)
        dt = time.perf_counter() - t0
        verdict = "PASS" if st.success_rate >= targets.get(task, 0.0) else "FAIL"
        print(
            f"scripted {task:<7} {st.successes:>4}/{st.attempts:<4} = {100 * st.success_rate:5.1f} %  "
            f"(target {100 * targets.get(task, 0):.0f} %, {verdict})  {dt / st.attempts:.2f} s/attempt",
            flush=True,
        )
    if args.mimicgen_n > 0:
        t0 = time.perf_counter()
        sources = scripted.generate_episodes("square", args.sources, args.seed, progress=False)
        eps, st = mimicgen.generate("square", args.mimicgen_n, sources, args.seed + 1, progress=False)
        dt = time.perf_counter() - t0
        print(
            f"mimicgen square: {st.successes} demos from {args.sources} sources in {st.attempts} attempts "
            f"(yield {100 * st.success_rate:.1f} %), {dt:.0f} s, mean length "
            f"{sum(e.num_samples for e in eps) / len(eps):.0f} steps",
            flush=True,
        )


if __name__ == "__main__":
    main()

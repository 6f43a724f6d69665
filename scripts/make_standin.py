"""Train the stand-in base policies the book uses and store them (~0.8 MB each) with their measured facts.

    python scripts/make_standin.py                      # every task below, both budgets
    python scripts/make_standin.py --only pointmass-reach --out standins-scratch

Each run writes ``<out>/<task>_<steps>/`` (standin.json + params.npz, loadable by
`csil_lite.base.standin.load_standin` and servable by `csil-lite serve --checkpoint`), and ``<out>/summary.json``
collects demos, steps, training seconds (on whatever machine ran it) and the success rate of the base alone,
its chunks of 10 executed open-loop, over a fixed set of evaluation episodes.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

# task -> (demos, [training budgets in steps], evaluation episodes)
PLAN = {
    "pointmass-reach": (50, [1000, 10000], 50),
    "lift": (50, [2000, 10000], 20),
    "can": (50, [2000, 10000], 20),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="book/_artefacts/base")
    p.add_argument("--only", nargs="+", choices=sorted(PLAN), default=sorted(PLAN))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()

    from csil_lite.base.cli import demo_episodes, train_and_save

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for task in args.only:
        num_demos, budgets, eval_episodes = PLAN[task]
        t0 = time.perf_counter()
        episodes = demo_episodes(task, num_demos, args.seed, progress=not args.quiet)
        print(f"{task}: {num_demos} demos in {time.perf_counter() - t0:.0f} s", flush=True)
        for steps in budgets:
            info = train_and_save(task, out / f"{task}_{steps}", steps=steps, num_demos=num_demos, seed=args.seed,
                                  eval_episodes=eval_episodes, progress=not args.quiet, episodes=episodes)
            # training seconds depend on what else ran: record the machine and its load next to them
            info.update(cpus=os.cpu_count(), load_average_1min=round(os.getloadavg()[0], 2))
            summary[f"{task}_{steps}"] = info
            print(f"{task} {steps} steps: success {info['success_rate']:.2f} over {eval_episodes} episodes, "
                  f"trained in {info['train_seconds']} s (final loss {info['final_loss']:.4f})", flush=True)
            summary_path.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

"""`csil-lite train`: one training run from the command line.

    csil-lite train --algo csil --task pointmass-obstacles --preset preview --seed 0 --out runs/csil-0

Re-running the same command on the same --out resumes from the last checkpoint.
"""

from __future__ import annotations

import argparse
import json

from csil_lite.config import PRESETS, preset
from csil_lite.configs import ALGORITHMS
from csil_lite.envs.registry import TASKS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="csil-lite train", description=__doc__.split("\n")[0])
    p.add_argument("--algo", choices=tuple(ALGORITHMS), default="csil",
                   help="a named configuration of csil_lite.configs")
    p.add_argument("--task", default="pointmass-obstacles", help=f"one of {', '.join(TASKS)}")
    p.add_argument("--preset", choices=PRESETS, default="preview",
                   help="budget: preview (CPU minutes) or reference (the reference CSIL code's); paper: with CSIL++")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run directory (config.json, metrics.jsonl, checkpoint/)")
    p.add_argument("--demos", default=None, help="robomimic HDF5 with demonstrations (robosuite tasks)")
    p.add_argument("--num-demos", type=int, default=None)
    p.add_argument("--env-steps", type=int, default=None)
    p.add_argument("--no-resume", action="store_true", help="start over even if --out holds a checkpoint")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                   help="override a config field, e.g. --set agent.beta=0.1 --set nets.features=128")
    args = p.parse_args(argv)

    overrides: dict = {"task": args.task, "seed": args.seed, "algo": args.algo, "agent": {}, "nets": {}}
    if args.demos:
        overrides["demos_path"] = args.demos
    if args.num_demos is not None:
        overrides["num_demos"] = args.num_demos
    if args.env_steps is not None:
        overrides["env_steps"] = args.env_steps
    for item in args.set:
        field, _, value = item.partition("=")
        if not value:
            p.error(f"--set expects FIELD=JSON, got {item!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        if "." in field:
            group, name = field.split(".", 1)
            if group not in ("agent", "nets"):
                p.error(f"--set: unknown group {group!r} (use agent.* or nets.*)")
            overrides[group][name] = tuple(parsed) if isinstance(parsed, list) else parsed
        else:
            overrides[field] = parsed
    try:
        cfg = preset(args.preset, **overrides)
    except (TypeError, ValueError) as err:
        p.error(str(err))

    from csil_lite.loop import train  # heavy imports only once the arguments are valid

    summary = train(cfg, args.out, resume=not args.no_resume)
    summary.pop("state", None)
    print(json.dumps(summary, indent=2))
    return 0

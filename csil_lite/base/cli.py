"""Command lines of the base-policy side (registered into `csil-lite` by `register`):

    csil-lite serve --checkpoint DIR [--host 127.0.0.1] [--port 8000]
    csil-lite lbm train --task T --out DIR [--steps N] [--num-demos N] [--demos FILE.hdf5]
    csil-lite evaluate --base DIR_OR_HOST:PORT --task T [--episodes 20] [--execute-steps 10]
    csil-lite demos export-lerobot IN.hdf5 --out DIR [--fps 20] [--prompt TEXT] [--images image|none]

This module imports only the standard library at import time (the dispatcher imports it to register the
commands); JAX, websockets and robosuite load when a command runs.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

from csil_lite.errors import ArgumentParser, UserError, check_input_file, check_output_path, int_at_least

COMMANDS = {
    "serve": ("csil_lite.base.cli:serve_main", "serve a stand-in base policy over openpi's websocket protocol"),
    "lbm": ("csil_lite.base.cli:lbm_main", "train the flow-matching stand-in base policy (lbm train)"),
    "evaluate": ("csil_lite.base.cli:evaluate_main", "success rate of a base policy alone (--base DIR|HOST:PORT)"),
}
DEMOS = ("csil_lite.base.cli:demos_main",
         "generate, render, inspect or export-lerobot demonstration datasets (robomimic HDF5)")


def register(commands: MutableMapping[str, tuple[str, str]]) -> None:
    """Add this module's commands to the dispatcher's table; `demos` gains `export-lerobot` and keeps the rest."""
    commands.update(COMMANDS)
    if "demos" in commands:
        commands["demos"] = DEMOS


def _argv(argv: Sequence[str] | None) -> list[str]:
    return list(sys.argv[1:] if argv is None else argv)


# -- serve ---------------------------------------------------------------------------------------------------


def _load_local(directory: str, seed: int = 0):
    from csil_lite.base.standin import load_standin

    try:
        return load_standin(directory, seed=seed)
    except ValueError as e:
        raise UserError(str(e)) from None


def serve_main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog="csil-lite serve", description="Serve a stand-in checkpoint over openpi's protocol.")
    p.add_argument("--checkpoint", required=True, help="directory written by `csil-lite lbm train`")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0: every interface)")
    p.add_argument("--port", type=int_at_least(0), default=8000)
    p.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the sampler's noise")
    args = p.parse_args(_argv(argv))
    if not Path(args.checkpoint).is_dir():
        raise UserError(f"--checkpoint {args.checkpoint!r}: no such directory")
    policy = _load_local(args.checkpoint, args.seed)
    from csil_lite.base.server import describe, run_server

    print(f"serving {describe(policy.metadata)} on ws://{args.host}:{args.port} (GET /healthz: 200)", flush=True)
    try:
        run_server(policy, args.host, args.port)
    except OSError as e:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({e.strerror or e})") from None
    except KeyboardInterrupt:
        pass
    return 0


# -- lbm train -----------------------------------------------------------------------------------------------


def demo_episodes(task: str, num_demos: int, seed: int, demos: str | None = None, progress: bool = True
                  ) -> list[tuple[Any, Any]]:
    """[(flat obs [T, o], actions [T, d])] of `num_demos` demonstrations: read from a robomimic file, or
    generated (the toy tasks' expert, robosuite tasks' scripted expert)."""
    import numpy as np

    from csil_lite.envs.registry import ROBOSUITE_TASKS, TOY_TASKS

    if demos is not None:
        from csil_lite.data.robomimic import read_dataset
        from csil_lite.data.transitions import flatten_obs
        from csil_lite.envs.robosuite import STATE_KEYS

        if task in TOY_TASKS:
            raise UserError(f"--demos {demos!r} with --task {task}: toy tasks generate their demos; --demos is "
                            "for robosuite tasks")
        ds = read_dataset(demos, max_episodes=num_demos)
        file_task = (ds.env_args.get("csil_lite") or {}).get("task")
        if file_task is not None and file_task != task:
            raise UserError(f"--demos {demos!r} holds {file_task} demos, not --task {task}")
        if len(ds.episodes) < num_demos:
            raise UserError(f"--demos {demos!r}: holds {len(ds.episodes)} demos, --num-demos asks for {num_demos}")
        try:
            return [(flatten_obs(ep.obs, STATE_KEYS), np.asarray(ep.actions, np.float32)) for ep in ds.episodes]
        except KeyError as e:
            raise UserError(f"--demos {demos!r}: {e.args[0]}; the stand-in reads {list(STATE_KEYS)}") from None
    if task in TOY_TASKS:
        from csil_lite.envs.toy import collect_demos

        return [(d["obs"], d["actions"]) for d in collect_demos(task, num_demos, seed)]
    if task in ROBOSUITE_TASKS:
        from csil_lite.data import scripted
        from csil_lite.data.transitions import flatten_obs
        from csil_lite.envs.robosuite import STATE_KEYS

        if task not in scripted.EXPERTS:
            raise UserError(f"--task {task}: no scripted expert to generate demos; pass --demos FILE.hdf5")
        eps = scripted.generate_episodes(task, num_demos, seed, progress=progress)
        return [(flatten_obs(ep.obs, STATE_KEYS), np.asarray(ep.actions, np.float32)) for ep in eps]
    raise UserError(f"--task {task!r}: unknown; choose a toy task {list(TOY_TASKS)} or {list(ROBOSUITE_TASKS)}")


def train_and_save(task: str, out: str | Path, *, steps: int, num_demos: int, seed: int = 0,
                   demos: str | None = None, batch_size: int = 256, hidden: int = 256, eval_episodes: int = 20,
                   execute_steps: int = 10, progress: bool = True,
                   episodes: Sequence[tuple[Any, Any]] | None = None) -> dict[str, Any]:
    """Train a stand-in on `num_demos` demos of `task` (or the given `episodes`), save it to `out`, evaluate it
    alone; returns its facts (also stored in the checkpoint's standin.json under "info")."""
    from csil_lite.base import standin as si
    from csil_lite.base.env import evaluate_base

    t0 = time.perf_counter()
    generated = episodes is None
    if generated:
        episodes = demo_episodes(task, num_demos, seed, demos, progress)
    episodes = list(episodes)[:num_demos]
    demo_s = time.perf_counter() - t0
    obs, chunks = si.episodes_to_chunks(episodes, 10)
    cfg = si.StandInConfig(obs_dim=int(obs.shape[1]), action_dim=int(chunks.shape[2]), hidden=hidden)
    res = si.train_standin(cfg, obs, chunks, steps=steps, batch_size=batch_size, seed=seed, progress=progress)
    info = {"task": task, "num_demos": num_demos, "demo_steps": int(obs.shape[0]), "train_steps": steps,
            "batch_size": batch_size, "seed": seed, "train_seconds": round(res.seconds, 1),
            "final_loss": float(res.losses[-1]), "params": si.num_params(res.params),
            "demos": Path(demos).name if demos else "generated"}
    if generated:
        info["demo_seconds"] = round(demo_s, 1)
    policy = si.StandInPolicy(cfg, res.params, res.obs_mean, res.obs_std, task=task, seed=seed, info=info)
    if eval_episodes > 0:
        t1 = time.perf_counter()
        ev = evaluate_base(task, lambda: policy, episodes=eval_episodes, seed=seed + 1000,
                           execute_steps=execute_steps)
        info.update(eval_episodes=eval_episodes, execute_steps=execute_steps, eval_seed=seed + 1000,
                    success_rate=ev["success_rate"], episode_length=ev["episode_length"],
                    eval_seconds=round(time.perf_counter() - t1, 1))
    policy.info = info
    si.save_standin(out, policy)
    return info


def lbm_main(argv: Sequence[str] | None = None) -> int:
    from csil_lite.envs.registry import TASKS

    p = ArgumentParser(prog="csil-lite lbm", description="The flow-matching stand-in base policy.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{train}")
    t = sub.add_parser("train", help="train a stand-in on demonstrations, save it, print its success rate")
    t.add_argument("--task", required=True, choices=TASKS)
    t.add_argument("--out", required=True, help="checkpoint directory (standin.json + params.npz)")
    t.add_argument("--steps", type=int_at_least(1), default=5000)
    t.add_argument("--num-demos", type=int_at_least(1), default=50)
    t.add_argument("--demos", help="robomimic HDF5 to read (default: generate with the scripted expert)")
    t.add_argument("--batch-size", type=int_at_least(1), default=256)
    t.add_argument("--eval-episodes", type=int_at_least(0), default=20, help="0: skip the evaluation")
    t.add_argument("--execute-steps", type=int_at_least(1), default=10, help="chunk rows executed per query")
    t.add_argument("--seed", type=int_at_least(0), default=0)
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(_argv(argv))
    if args.demos is not None:
        check_input_file("--demos", args.demos)
    check_output_path("--out", args.out, directory=True)
    if args.execute_steps > 10:
        raise UserError(f"--execute-steps {args.execute_steps}: at most the chunk length 10")
    info = train_and_save(args.task, args.out, steps=args.steps, num_demos=args.num_demos, seed=args.seed,
                          demos=args.demos, batch_size=args.batch_size, eval_episodes=args.eval_episodes,
                          execute_steps=args.execute_steps, progress=not args.quiet)
    print(f"stand-in for {args.task}: {info['params']} parameters, {args.steps} steps on {args.num_demos} demos "
          f"({info['demo_steps']} steps) in {info['train_seconds']} s, final loss {info['final_loss']:.4f}")
    if "success_rate" in info:
        print(f"success rate {100 * info['success_rate']:.0f} % over {info['eval_episodes']} episodes "
              f"(chunks of {args.execute_steps} executed open-loop)")
    print(f"saved to {args.out}")
    return 0


# -- evaluate --base -----------------------------------------------------------------------------------------


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    from csil_lite.envs.registry import TASKS

    p = ArgumentParser(prog="csil-lite evaluate", description="Evaluate a base policy alone on a task.")
    p.add_argument("--base", required=True, help="stand-in checkpoint directory, or HOST:PORT of a policy server")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--episodes", type=int_at_least(1), default=20)
    p.add_argument("--execute-steps", type=int_at_least(1), default=10)
    p.add_argument("--seed", type=int_at_least(0), default=0)
    p.add_argument("--wait", type=float, default=5.0, help="seconds to retry while a server starts")
    p.add_argument("--repeats", type=int_at_least(1), default=1,
                   help="evaluations of --episodes each on the final-evaluation seeds (the paper's protocol: 5)")
    p.add_argument("--out", default=None, help="write the result as a run's final_eval.json into this directory "
                                               "(method 'base'), for `csil-lite report`")
    args = p.parse_args(_argv(argv))
    if args.out:
        check_output_path("--out", args.out, directory=True)
    if Path(args.base).is_dir():
        policy = _load_local(args.base, args.seed)

        def make():
            return policy
    else:
        from csil_lite.base.client import RemoteBasePolicy, parse_address

        host, port = parse_address(args.base)
        first = RemoteBasePolicy(host, port, wait=args.wait)

        def make():
            return first
    meta = make().metadata
    if args.execute_steps > int(meta["action_horizon"]):
        raise UserError(f"--execute-steps {args.execute_steps}: at most the base's chunk length "
                        f"{meta['action_horizon']}")
    from csil_lite.base.env import evaluate_base

    from csil_lite.evaluation import final_seeds

    t0 = time.perf_counter()
    seeds = [args.seed] if args.repeats == 1 and not args.out else final_seeds(args.seed, args.repeats)
    rates = []
    for seed in seeds:
        out = evaluate_base(args.task, make, episodes=args.episodes, seed=seed, execute_steps=args.execute_steps)
        rates.append(out["success_rate"])
        print(f"{meta.get('model', 'base')} on {args.task}: success rate {100 * out['success_rate']:.0f} % over "
              f"{args.episodes} episodes, mean length {out['episode_length']:.0f}, {int(out['base_queries'])} base "
              f"queries, {time.perf_counter() - t0:.1f} s")
    if args.out:
        from csil_lite.checkpoints import write_atomic
        from csil_lite.report import FINAL_EVAL

        Path(args.out).mkdir(parents=True, exist_ok=True)
        record = {"method": "base", "task": args.task, "seed": args.seed, "base": args.base,
                  "execute_steps": args.execute_steps, "episodes": args.episodes, "success_rates": rates}
        write_atomic(Path(args.out) / FINAL_EVAL, json.dumps(record, indent=2))
    return 0


# -- demos export-lerobot ------------------------------------------------------------------------------------


def export_lerobot_main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog="csil-lite demos export-lerobot",
                       description="Convert a robomimic-format HDF5 into a LeRobot dataset (v2.1 by default).")
    p.add_argument("input", help="robomimic-format HDF5")
    p.add_argument("--out", required=True, help="dataset directory to create (must not exist or be empty)")
    p.add_argument("--fps", type=int_at_least(1), default=20)
    p.add_argument("--prompt", help="task string stored for every episode (default: from the file's env)")
    p.add_argument("--images", choices=["image", "none"], default="image",
                   help="image keys as PNG image columns (LeRobot's 'image' dtype), or left out")
    p.add_argument("--format", choices=["v2.1"], default="v2.1", dest="version")
    p.add_argument("--repo-id", default=None, help="name recorded in the openpi config (default: the out dir)")
    args = p.parse_args(_argv(argv))
    check_input_file("input file", args.input)
    check_output_path("--out", args.out, directory=True)
    from csil_lite.data.lerobot import export_lerobot

    summary = export_lerobot(args.input, args.out, fps=args.fps, prompt=args.prompt, images=args.images,
                             repo_id=args.repo_id)
    print(f"wrote LeRobot {summary['codebase_version']} dataset: {summary['total_episodes']} episodes, "
          f"{summary['total_frames']} frames, features {', '.join(summary['features'])} -> {args.out}")
    print(f"openpi training-config values: {Path(args.out) / 'meta' / 'openpi_config.json'}")
    return 0


def demos_main(argv: Sequence[str] | None = None) -> int:
    argv = _argv(argv)
    if argv and argv[0] == "export-lerobot":
        return export_lerobot_main(argv[1:])
    from csil_lite.data import generate

    if argv and argv[0] in ("-h", "--help"):
        print("csil-lite demos export-lerobot IN.hdf5 --out DIR: convert to a LeRobot v2.1 dataset "
              "(see `csil-lite demos export-lerobot --help`)\n")
    return generate.main(argv)


"""`csil-lite demos ...`: make, render and inspect robomimic-format demonstration files.

    csil-lite demos generate --task square --n 200 [--method scripted|mimicgen] [--sources 10] [--images]
                             --seed 0 --out square.hdf5
    csil-lite demos render IN.hdf5 --out OUT.hdf5 [--image-size 84]
    csil-lite demos info FILE.hdf5

Images are rendered in a second pass from the saved MuJoCo ``states`` (state-only generation runs ~15x faster
than stepping with cameras on a CPU), exactly as robomimic's ``dataset_states_to_obs`` does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from csil_lite.data.robomimic import Episode
from csil_lite.errors import (
    ArgumentParser,
    UserError,
    check_input_file,
    check_output_path,
    int_at_least,
    nonnegative_float,
)


def _task_from_env_args(env_args: dict) -> str:
    from csil_lite.envs.robosuite import task_from_env_args

    return task_from_env_args(env_args)[0]


def render_episode(env, ep: Episode, cameras: Sequence[str], size: int) -> tuple[dict, dict]:
    """(obs images, next_obs images) of one episode from its states; the last next frame replays the last action."""
    from csil_lite.envs.robosuite import render_frames

    if ep.states is None:
        raise ValueError("render: episode has no `states` to render from")
    obs, nxt = {}, {}
    env.reset_to(ep.states[0], model_file=ep.model_file)
    for cam in cameras:
        frames = render_frames(env, ep.states, cam, size)
        env.reset_to(ep.states[-1])
        env.step(np.asarray(ep.actions[-1], np.float64))
        last = render_frames(env, None, cam, size)
        obs[f"{cam}_image"] = frames
        nxt[f"{cam}_image"] = np.concatenate([frames[1:], last], axis=0)
    return obs, nxt


def add_images(episodes: list[Episode], env, cameras: Sequence[str], size: int, progress: bool = True) -> None:
    from tqdm.auto import tqdm

    for ep in tqdm(episodes, desc="render images", disable=not progress, leave=False):
        o, n = render_episode(env, ep, cameras, size)
        ep.obs.update(o)
        ep.next_obs.update(n)


def _generate(args: argparse.Namespace) -> int:
    from csil_lite.data import mimicgen, scripted
    from csil_lite.data.robomimic import write_dataset
    from csil_lite.envs.robosuite import CAMERAS, make

    env = make(args.task, seed=args.seed)
    if args.method == "scripted":
        episodes, stats = scripted.generate_episodes(
            args.task, args.n, args.seed, env=env, noise=args.noise, return_stats=True, progress=not args.quiet
        )
        print(f"scripted expert: {stats.successes}/{stats.attempts} succeeded ({100 * stats.success_rate:.1f} %)")
    else:
        sources = scripted.generate_episodes(args.task, args.sources, args.seed, env=env, progress=not args.quiet)
        episodes, stats = mimicgen.generate(
            args.task, args.n, sources, args.seed + 1, env=env, noise=args.noise, progress=not args.quiet
        )
        print(
            f"mimicgen: {stats.successes}/{stats.attempts} attempts succeeded ({100 * stats.success_rate:.1f} %) "
            f"from {args.sources} scripted source demos"
        )
    env_args = env.env_args()
    if args.images:
        add_images(episodes, env, CAMERAS, args.image_size, progress=not args.quiet)
        env_args["env_kwargs"].update(camera_heights=args.image_size, camera_widths=args.image_size)
    write_dataset(args.out, episodes, env_args, seed=args.seed, compression="gzip" if args.images else None)
    lengths = [ep.num_samples for ep in episodes]
    print(f"wrote {len(episodes)} demos ({sum(lengths)} steps, mean length {np.mean(lengths):.0f}) to {args.out}")
    return 0


def _render(args: argparse.Namespace) -> int:
    from csil_lite.data.robomimic import read_dataset, write_dataset
    from csil_lite.envs.robosuite import make

    ds = read_dataset(args.input)
    no_states = [name for name, ep in zip(ds.demo_names, ds.episodes) if ep.states is None]
    if no_states:
        raise UserError(f"{args.input}: render needs the MuJoCo `states` of every demo; "
                        f"{len(no_states)} demos have none (first: {no_states[0]})")
    env = make(_task_from_env_args(ds.env_args))
    known = tuple(env.sim.model.camera_names)
    unknown = [c for c in args.cameras if c not in known]
    if unknown:
        raise UserError(f"--cameras: {', '.join(unknown)} not in this scene; its cameras: {', '.join(known)}")
    add_images(ds.episodes, env, args.cameras, args.image_size, progress=not args.quiet)
    env_args = dict(ds.env_args)
    env_args.setdefault("env_kwargs", {}).update(
        camera_names=list(args.cameras), camera_heights=args.image_size, camera_widths=args.image_size
    )
    extra = {k: v for k, v in ds.masks.items() if k not in ("train", "valid")}
    write_dataset(args.out, ds.episodes, env_args, compression="gzip", extra_masks=extra or None)
    print(f"rendered {len(ds.episodes)} demos ({', '.join(args.cameras)} at {args.image_size}px) to {args.out}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from csil_lite.data.robomimic import read_dataset

    ds = read_dataset(args.input)
    lengths = np.array([ep.num_samples for ep in ds.episodes])
    actions = np.concatenate([np.asarray(ep.actions) for ep in ds.episodes])
    success = np.mean([float(np.max(ep.rewards) > 0) for ep in ds.episodes])
    print(f"file        {args.input}")
    print(f"env         {ds.env_args.get('env_name')} (robosuite {ds.env_args.get('env_version', '?')})")
    print(f"demos       {len(ds.episodes)}   steps {int(lengths.sum())}")
    print(f"length      mean {lengths.mean():.1f}  min {lengths.min()}  max {lengths.max()}")
    print(f"success     {100 * success:.1f} % of demos reach reward > 0")
    print(f"actions     dim {actions.shape[1]}  min {actions.min():+.3f}  max {actions.max():+.3f}")
    print("obs keys:")
    for k, v in ds.episodes[0].obs.items():
        print(f"  {k:<28} {str(v.shape[1:]):<14} {v.dtype}")
    print(f"states      {'yes' if ds.episodes[0].states is not None else 'no'}"
          f"   model_file {'yes' if ds.episodes[0].model_file else 'no'}")
    print("masks       " + ", ".join(f"{k} ({len(v)})" for k, v in ds.masks.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from csil_lite.envs.robosuite import CAMERAS

    p = ArgumentParser(prog="csil-lite demos", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{generate,render,info}")
    g = sub.add_parser("generate", help="generate successful demos with a scripted expert or MimicGen-style")
    g.add_argument("--task", required=True, choices=["lift", "can", "square", "square_d0"])
    g.add_argument("--n", type=int_at_least(1), default=200, help="number of successful demos to keep")
    g.add_argument("--method", choices=["scripted", "mimicgen"], default="scripted")
    g.add_argument("--sources", type=int_at_least(1), default=10,
                   help="scripted source demos for --method mimicgen")
    g.add_argument("--images", action="store_true", help="also render agentview + eye-in-hand images")
    g.add_argument("--image-size", type=int_at_least(1), default=84)
    g.add_argument("--noise", type=nonnegative_float, default=0.05,
                   help="std of Gaussian noise on the 6 arm action dims")
    g.add_argument("--seed", type=int_at_least(0), default=0)
    g.add_argument("--out", required=True)
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    r = sub.add_parser("render", help="add image observations to a file with `states`")
    r.add_argument("input")
    r.add_argument("--out", required=True)
    r.add_argument("--in-place", action="store_true",
                   help="allow --out to be the input file (it is rewritten with the images added)")
    r.add_argument("--image-size", type=int_at_least(1), default=84)
    r.add_argument("--cameras", nargs="+", default=list(CAMERAS))
    r.add_argument("--quiet", action="store_true")
    i = sub.add_parser("info", help="summarise a robomimic-format file")
    i.add_argument("input")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    # Paths first: a generation of several minutes must not end in a failed write.
    if args.cmd in ("render", "info"):
        check_input_file("input file", args.input)
    if args.cmd in ("generate", "render"):
        check_output_path("--out", args.out)
    if args.cmd == "render" and Path(args.out).exists() and Path(args.out).samefile(args.input):
        if not args.in_place:
            raise UserError(f"--out {args.out!r} is the input file: render writes a new file; pass --in-place to "
                            "rewrite the input with the images added")
    if args.cmd == "generate":
        return _generate(args)
    if args.cmd == "render":
        return _render(args)
    return _info(args)


if __name__ == "__main__":  # one-line errors, as `csil-lite demos`
    from csil_lite.cli import main as cli_main

    sys.exit(cli_main(["demos", *sys.argv[1:]]))

"""`csil-lite train`: one training run from the command line.

    csil-lite train --algo csil --task pointmass-obstacles --preset preview --seed 0 --out runs/csil-0
    csil-lite train --algo csilpp --task pointmass-reach --base book/_artefacts/base/pointmass-reach_1000 \
        --compose ensemble --chunk 5 --out runs/csilpp-ens-0       # on top of a base (a stand-in, or HOST:PORT)

Re-running the same command on the same --out resumes from the last checkpoint. Every flag, `--set` override
and input file is checked before the run directory is created, so a bad invocation leaves nothing behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
from typing import Any

from csil_lite.config import BUDGETS, AgentConfig, BaseConfig, EmbedConfig, NetworkConfig, RunConfig
from csil_lite.configs import ALGORITHMS, preset
from csil_lite.envs.registry import TASKS, TOY_TASKS
from csil_lite.errors import ArgumentParser, UserError, check_input_file, check_output_path, int_at_least

GROUPS: dict[str, type] = {"agent": AgentConfig, "nets": NetworkConfig, "base": BaseConfig, "embed": EmbedConfig}


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="csil-lite train", description=__doc__.split("\n")[0])
    p.add_argument("--algo", choices=tuple(ALGORITHMS), default="csil",
                   help="a named configuration of csil_lite.configs")
    p.add_argument("--task", choices=TASKS, metavar="TASK", default="pointmass-obstacles",
                   help=f"one of {', '.join(TASKS)}")
    p.add_argument("--preset", choices=BUDGETS, default="preview",
                   help="budget: preview (CPU minutes), reference (the reference CSIL code's) or paper (the seed "
                        "paper's Table II, for CSIL++)")
    p.add_argument("--seed", type=int_at_least(0), default=0)
    p.add_argument("--out", required=True, help="run directory (config.json, metrics.jsonl, checkpoint/)")
    p.add_argument("--demos", default=None, help="robomimic HDF5 with demonstrations (robosuite tasks)")
    p.add_argument("--num-demos", type=int_at_least(1), default=None)
    p.add_argument("--env-steps", type=int_at_least(1), default=None)
    p.add_argument("--obs", choices=("state", "image"), default="state",
                   help="what the policy sees (robosuite tasks): the low-dim state, or the two cameras plus "
                        "proprioception through the algorithm's image encoder (--demos must hold the frames)")
    p.add_argument("--no-resume", action="store_true", help="start over even if --out holds a checkpoint")
    p.add_argument("--base", default=None, metavar="DIR|HOST:PORT",
                   help="a frozen base policy acting next to the small one: a stand-in directory (`csil-lite lbm "
                        "train`) or the host:port of an openpi policy server (pi0.5, `csil-lite serve`)")
    p.add_argument("--compose", choices=("ensemble", "residual"), default=None,
                   help="how the executed action is made from the base's and the small policy's (with --base; "
                        "default ensemble): (a_b + a_pi)/2, or a_pi's latent mean shifted by atanh(a_b)")
    p.add_argument("--chunk", type=int_at_least(1), default=None,
                   help="actions of each base chunk executed open-loop before the next query (default 10)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                   help="override a config field, e.g. --set agent.beta=0.1 --set nets.features=128 "
                        "--set base.residual_scale=0.1")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log every evaluation as TensorBoard scalars in OUT/tensorboard (needs tensorboardX)")
    p.add_argument("--wandb", action="store_true",
                   help="also log every evaluation to an offline Weights & Biases run in OUT/wandb (needs wandb; "
                        "upload later with `wandb sync`)")
    return p


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _check_field(item: str, cls: type, name: str) -> None:
    names = _field_names(cls)
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"--set {item}: {cls.__name__} has no field {name!r}{hint} "
                        f"(fields: {', '.join(names)})")


def parse_overrides(items: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """`--set FIELD=JSON` items -> (preset overrides, {"Class.field": item} to point errors at their flag).

    A value that is not valid JSON is taken as a string; JSON lists become tuples (the configs' sizes).
    """
    overrides: dict[str, Any] = {group: {} for group in GROUPS}
    origin: dict[str, str] = {}
    for item in items:
        field, sep, value = item.partition("=")
        field = field.strip()
        if not sep or not field or not value:
            raise UserError(f"--set {item!r}: expected FIELD=VALUE, e.g. agent.beta=0.1 or nets.features=128")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        if isinstance(parsed, list):
            parsed = tuple(parsed)
        if "." in field:
            group, name = field.split(".", 1)
            if group not in GROUPS:
                raise UserError(f"--set {item}: unknown group {group!r}; use agent.FIELD, nets.FIELD, "
                                "base.FIELD or a RunConfig field")
            if name == "algo":
                raise UserError(f"--set {item}: choose the algorithm with --algo")
            _check_field(item, GROUPS[group], name)
            overrides[group][name] = parsed
            origin[f"{GROUPS[group].__name__}.{name}"] = item
        else:
            if field in GROUPS:
                raise UserError(f"--set {item}: {field!r} is a group; set its fields one by one, "
                                f"e.g. --set {field}.{_field_names(GROUPS[field])[0]}=...")
            if field == "algo":
                raise UserError(f"--set {item}: choose the algorithm with --algo")
            if field == "budget":
                raise UserError(f"--set {item}: choose the budget with --preset")
            _check_field(item, RunConfig, field)
            overrides[field] = parsed
            origin[f"RunConfig.{field}"] = item
    return overrides, origin


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run's config from the parsed flags; an invalid value is a `UserError` naming its field and flag."""
    overrides: dict[str, Any] = {"task": args.task, "seed": args.seed, "algo": args.algo}
    if args.demos:
        overrides["demos_path"] = args.demos
    if args.num_demos is not None:
        overrides["num_demos"] = args.num_demos
    if args.env_steps is not None:
        overrides["env_steps"] = args.env_steps
    if args.obs != "state":
        overrides["obs"] = args.obs
    from_set, origin = parse_overrides(args.set)
    overrides.update(from_set)
    if (args.compose is not None or args.chunk is not None) and args.base is None:
        raise UserError("--compose and --chunk apply to a base policy: pass --base DIR or --base HOST:PORT")
    flags = {"source": args.base, "compose": args.compose, "chunk": args.chunk}
    overrides["base"].update({k: v for k, v in flags.items() if v is not None})
    try:
        cfg = preset(args.preset, **overrides)
    except ValueError as err:  # the configs' validators: every value here came from the command line
        where = next((f" (from --set {item})" for key, item in origin.items() if key in str(err)), "")
        raise UserError(f"{err}{where}") from err
    if cfg.task not in TASKS:
        raise UserError(f"task {cfg.task!r} (from --set): expected one of {', '.join(TASKS)}")
    return cfg


def check_inputs(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Cheap checks of the paths a run needs, with the flag that names them (the loop reads the files later,
    still before it creates the run directory)."""
    check_output_path("--out", args.out, directory=True)
    flag = "--demos" if args.demos else "--set demos_path"
    if cfg.demos_path:
        check_input_file(flag, cfg.demos_path)
    elif cfg.task not in TOY_TASKS:
        raise UserError(f"--task {cfg.task}: a robosuite task needs demonstrations; pass --demos FILE.hdf5 "
                        f"(make one with `csil-lite demos generate --task {cfg.task} --out FILE.hdf5`)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    check_inputs(cfg, args)

    from csil_lite.data.robomimic import DatasetError
    from csil_lite.loop import train  # heavy imports only once the arguments are valid

    from csil_lite.run_logs import eval_log

    try:
        with eval_log(args.out, args.tensorboard, args.wandb, cfg.to_dict()) as log:
            summary = train(cfg, args.out, resume=not args.no_resume, on_eval=log)
    except DatasetError as err:  # the only file a run reads is the demonstrations file
        raise UserError(f"--demos: {err}") from err
    summary.pop("state", None)
    print(json.dumps(summary, indent=2))
    return 0

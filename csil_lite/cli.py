"""`csil-lite` console script.

Each sub-command lives next to the code it drives and exposes `main(argv) -> int`; this file only dispatches,
so importing the CLI never imports robosuite or JAX until a command needs them.

Errors: a `csil_lite.errors.UserError` (bad flag, config field or file) is printed as one line on stderr,
naming the culprit, the value and what was expected, and the command exits with status 2. Any other exception
is a bug and keeps its traceback. `--debug` (anywhere on the command line) re-raises user errors with their
traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

from csil_lite.base.cli import register as register_base_commands
from csil_lite.errors import UserError, one_line

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("csil_lite.train", "train CSIL / SAC-from-BC / BC (--preset preview|reference|paper)"),
    "plot": ("csil_lite.plotting", "plot the metrics of one or more run directories"),
    "demos": ("csil_lite.data.generate", "generate or inspect demonstration datasets (robomimic HDF5)"),
    "report": ("csil_lite.report", "the paper's protocol table (median [25, 75]) of finished runs"),
    "sweep": ("csil_lite.sweep", "a grid of runs (algos x tasks x seeds) on Ray, or a local process pool"),
}
register_base_commands(COMMANDS)  # serve, lbm, evaluate, demos export-lerobot ("module:function" entries)
USER_ERROR_STATUS = 2


def _usage() -> str:
    lines = ["usage: csil-lite [--debug] COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `csil-lite COMMAND --help` for the options of one command.",
              "--debug: show the traceback of an input error instead of the one-line message."]
    return "\n".join(lines)


def run(name: str, argv: list[str]) -> int:
    """Sub-command `name` with `argv`; raises `UserError` for an unknown command."""
    if name not in COMMANDS:
        choices = ", ".join(COMMANDS)
        raise UserError(f"unknown command {name!r}; choose from {choices} (see `csil-lite --help`)")
    module_name, _, function = COMMANDS[name][0].partition(":")
    module = importlib.import_module(module_name)
    return int(getattr(module, function or "main")(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    try:
        return run(name, rest)
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: not an error to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # as the Python docs recommend
        return 1
    except UserError as err:
        if debug:
            raise
        prog = f"csil-lite {name}" if name in COMMANDS else "csil-lite"
        print(f"{prog}: error: {one_line(str(err))}", file=sys.stderr)
        return USER_ERROR_STATUS


if __name__ == "__main__":
    sys.exit(main())

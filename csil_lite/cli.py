"""`csil-lite` console script.

Each sub-command lives next to the code it drives and exposes `main(argv) -> int`; this file only dispatches,
so importing the CLI never imports robosuite or JAX until a command needs them.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("csil_lite.train", "train CSIL / SAC-from-BC / BC on a task (--preset preview|reference)"),
    "plot": ("csil_lite.plotting", "plot the metrics of one or more run directories"),
    "demos": ("csil_lite.data.generate", "generate or inspect demonstration datasets (robomimic HDF5)"),
}


def _usage() -> str:
    lines = ["usage: csil-lite COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `csil-lite COMMAND --help` for the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"csil-lite: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())

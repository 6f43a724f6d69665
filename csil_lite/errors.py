"""User errors: input that is wrong, as opposed to code that is wrong.

`UserError` is what validators (configs, command-line arguments) and readers (demonstration files, run
directories) raise when the person running csil_lite supplied something unusable: an unknown name, a missing
or unreadable file, a value of the wrong type or range, an impossible size. Its message names the field, flag
or file, the value and what was expected. It subclasses `ValueError`, so code that catches `ValueError` keeps
working.

The `csil-lite` command prints a `UserError` as one line on stderr and exits with status 2; every other
exception is treated as a bug and keeps its traceback. `--debug` shows the traceback of a `UserError` too.

This module imports only the standard library, so the command line can report bad arguments before it pays for
importing JAX or robosuite.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Callable

__all__ = [
    "ArgumentParser",
    "UserError",
    "check_input_file",
    "check_output_path",
    "int_at_least",
    "nonnegative_float",
    "one_line",
]


class UserError(ValueError):
    """Bad input from the user (a flag, a config field, a file): reported in one line, without a traceback."""


def one_line(message: str) -> str:
    """`message` with its line breaks folded into spaces, so it prints as one line."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


class ArgumentParser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors raise `UserError` instead of printing usage and exiting.

    The caller (the `csil-lite` entry point) decides how to report it; sub-command parsers inherit the class.
    """

    def error(self, message: str):  # type: ignore[override]
        raise UserError(f"{message} (see `{self.prog} --help`)")


def int_at_least(low: int) -> Callable[[str], int]:
    """argparse `type=` for an integer >= `low`; the message names the bound and the value given."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"int >= {low}"
    return parse


def nonnegative_float(text: str) -> float:
    """argparse `type=` for a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def check_input_file(flag: str, path: str | os.PathLike) -> Path:
    """`path` is an existing, readable regular file, else a `UserError` naming `flag`."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{flag} {str(path)!r}: no such file")
    if not p.is_file():
        raise UserError(f"{flag} {str(path)!r}: expected a file, found a directory or special file")
    if not os.access(p, os.R_OK):
        raise UserError(f"{flag} {str(path)!r}: file is not readable (permission denied)")
    return p


def check_output_path(flag: str, path: str | os.PathLike, *, directory: bool = False) -> Path:
    """`path` can be written: a file (with `directory`, a directory) whose parent exists (can be created).

    Checked before a command does any work, so a long generation does not end in a failed write. Permission
    bits are not enough (root passes `os.access` everywhere, and a directory such as /proc takes no new files):
    the check opens an existing file for appending without writing, or creates and removes a probe file in the
    directory that would hold a new one. Nothing is left behind.
    """
    p = Path(path)
    kind = "directory" if directory else "file"
    if p.exists() and p.is_dir() != directory:
        found = "directory" if p.is_dir() else "file"
        raise UserError(f"{flag} {str(path)!r}: expected a {kind} path, but it is an existing {found}")
    if p.exists():
        if not os.access(p, os.W_OK):
            raise UserError(f"{flag} {str(path)!r}: not writable (permission denied)")
        if not directory:
            try:
                with open(p, "ab"):
                    pass
            except OSError as exc:
                raise UserError(f"{flag} {str(path)!r}: cannot be written ({exc.strerror or exc})") from None
        elif not _can_create_in(p):
            raise UserError(f"{flag} {str(path)!r}: cannot create files in this directory")
        return p
    # The nearest existing ancestor must be a writable directory (a run directory's parents are created).
    ancestor = p.absolute().parent
    while not ancestor.exists():
        if not directory:
            raise UserError(f"{flag} {str(path)!r}: directory {str(p.parent)!r} does not exist")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{flag} {str(path)!r}: {str(ancestor)!r} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK) or not _can_create_in(ancestor):
        raise UserError(f"{flag} {str(path)!r}: cannot create it in {str(ancestor)!r} (not writable)")
    return p


def _can_create_in(directory: Path) -> bool:
    """Whether a new file can really be created in `directory` (a probe file, removed at once)."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".csil-write-probe-"):
            return True
    except OSError:
        return False

"""Small helpers the chapters share: the preview banner, where stored results live, the plotting style.

Chapters read the toggle themselves (`PREVIEW = os.environ.get("CSIL_PREVIEW", "1") != "0"`) so the
convention is visible on the page; everything else that is not about the method lives here.
"""

from __future__ import annotations

import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def banner(preview: bool, what: str = "") -> None:
    """Print a banner so preview figures are never mistaken for paper-scale results."""
    if preview:
        extra = f" {what}" if what else ""
        print("PREVIEW MODE (CSIL_PREVIEW=1): small CPU budget, illustrative curves.")
        if extra:
            print(f"Reduced here:{extra}")
        print("CSIL_PREVIEW=0 runs the paper-scale budget (GPU recommended).")
    else:
        print("FULL MODE (CSIL_PREVIEW=0): paper-scale budget.")


def artefacts_dir() -> Path:
    """Directory of stored (small) full-run results: $CSIL_RESULTS, else `_artefacts` next to the chapters."""
    env = os.environ.get("CSIL_RESULTS")
    if env:
        return Path(env)
    for candidate in (Path("_artefacts"), Path("book") / "_artefacts"):
        if candidate.is_dir():
            return candidate
    return Path("_artefacts")


def environment_report() -> dict[str, str]:
    """Versions and devices, for chapter 0 and for bug reports."""
    import importlib.metadata as md

    import jax

    report = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("csil_lite", "jax", "flax", "optax", "distrax", "numpy", "gymnasium", "robosuite", "mujoco", "h5py"):
        try:
            report[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            report[pkg] = "not installed"
    report["jax devices"] = ", ".join(str(d) for d in jax.devices())
    report["CSIL_PREVIEW"] = os.environ.get("CSIL_PREVIEW", "1 (default)")
    return report


@contextmanager
def timed(label: str) -> Iterator[None]:
    """Print how long a cell took; chapters report their own cost honestly."""
    t0 = time.perf_counter()
    yield
    print(f"[{label}] {time.perf_counter() - t0:.1f} s")

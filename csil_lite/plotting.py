"""Plots that read run directories: learning curves with median and 25th–75th percentile bands across seeds.

`csil-lite plot RUN_DIR... --out fig.png` groups runs by algorithm (from each run's config.json).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from csil_lite.evaluation import median_iqr
from csil_lite.loop import read_metrics


def curves_by_algo(run_dirs: Sequence[str | Path], metric: str = "success_rate") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{algo: (steps [T], values [n_seeds, T])}; runs are truncated to their common evaluation steps."""
    grouped: dict[str, list[list[dict]]] = defaultdict(list)
    for d in run_dirs:
        cfg = json.loads((Path(d) / "config.json").read_text())
        # The run's configuration name; run directories written before configs/ existed kept it in "agent".
        grouped[cfg["algo"] if "algo" in cfg else cfg["agent"]["algo"]].append(read_metrics(d))
    out = {}
    for algo, runs in grouped.items():
        n = min(len(r) for r in runs)
        steps = np.array([row["step"] for row in runs[0][:n]])
        values = np.array([[row.get(metric, np.nan) for row in r[:n]] for r in runs], np.float64)
        out[algo] = (steps, values)
    return out


def plot_curves(ax, curves: dict[str, tuple[np.ndarray, np.ndarray]], *, ylabel: str = "success rate",
                labels: dict[str, str] | None = None, colors: dict[str, str] | None = None):
    """Median line and interquartile band per algorithm (bands need >= 2 seeds)."""
    for algo, (steps, values) in curves.items():
        med, lo, hi = median_iqr(values)
        color = (colors or {}).get(algo)
        n = values.shape[0]
        line, = ax.plot(steps, med, label=f"{(labels or {}).get(algo, algo)} (n={n})", color=color)
        if n > 1:
            ax.fill_between(steps, lo, hi, alpha=0.25, color=line.get_color())
    ax.set_xlabel("environment steps")
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="csil-lite plot", description="plot learning curves of run directories")
    p.add_argument("runs", nargs="+", help="run directories written by `csil-lite train`")
    p.add_argument("--metric", default="success_rate")
    p.add_argument("--out", default="curves.png")
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    plot_curves(ax, curves_by_algo(args.runs, args.metric), ylabel=args.metric.replace("_", " "))
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    return 0

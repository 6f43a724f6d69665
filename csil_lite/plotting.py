"""Plots that read run directories: learning curves with median and 25th–75th percentile bands across seeds.

`csil-lite plot RUN_DIR... --out fig.png` groups runs by algorithm (from each run's config.json).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from csil_lite.errors import ArgumentParser, UserError, check_output_path
from csil_lite.evaluation import median_iqr


def read_run(run_dir: str | Path) -> tuple[str, list[dict[str, Any]]]:
    """(algorithm, evaluation rows) of a run directory; a `UserError` naming the file if it is not one."""
    d = Path(run_dir)
    if not d.is_dir():
        what = "is not a directory" if d.exists() else "does not exist"
        raise UserError(f"run directory {str(run_dir)!r} {what}")
    cfg_path, metrics_path = d / "config.json", d / "metrics.jsonl"
    for path in (cfg_path, metrics_path):
        if not path.is_file():
            raise UserError(f"{path}: missing; {str(run_dir)!r} is not a run directory written by "
                            "`csil-lite train`")
    try:
        cfg = json.loads(cfg_path.read_text())
        # The run's configuration name; run directories written before configs/ existed kept it in "agent".
        algo = cfg["algo"] if "algo" in cfg else cfg["agent"]["algo"]
    except (ValueError, KeyError, TypeError) as e:
        detail = f"{type(e).__name__}: {e}"
        raise UserError(f"{cfg_path}: expected a run config with algo ({detail})") from None
    rows = []
    for i, line in enumerate(metrics_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise UserError(f"{metrics_path}, line {i}: not valid JSON ({e})") from None
        if not isinstance(row, dict) or "step" not in row:
            raise UserError(f"{metrics_path}, line {i}: expected an object with a 'step' field")
        rows.append(row)
    if not rows:
        raise UserError(f"{metrics_path}: no evaluations recorded yet")
    return algo, rows


def curves_by_algo(run_dirs: Sequence[str | Path], metric: str = "success_rate") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{algo: (steps [T], values [n_seeds, T])}; runs are truncated to their common evaluation steps."""
    grouped: dict[str, list[list[dict]]] = defaultdict(list)
    for d in run_dirs:
        algo, rows = read_run(d)
        if not any(metric in row for row in rows):
            recorded = sorted({k for row in rows for k in row} - {"step"})
            raise UserError(f"metric {metric!r} is not recorded in {Path(d) / 'metrics.jsonl'}; "
                            f"recorded: {', '.join(recorded)}")
        grouped[algo].append(rows)
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
    p = ArgumentParser(prog="csil-lite plot", description="plot learning curves of run directories")
    p.add_argument("runs", nargs="+", help="run directories written by `csil-lite train`")
    p.add_argument("--metric", default="success_rate")
    p.add_argument("--out", default="curves.png")
    args = p.parse_args(argv)
    curves = curves_by_algo(args.runs, args.metric)  # reads and checks every run before anything is written
    check_output_path("--out", args.out)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    suffix = Path(args.out).suffix.lstrip(".").lower()
    formats = fig.canvas.get_supported_filetypes()
    if suffix and suffix not in formats:
        plt.close(fig)
        raise UserError(f"--out {args.out!r}: matplotlib cannot write .{suffix} files; use one of "
                        f"{', '.join('.' + f for f in sorted(formats))}")
    plot_curves(ax, curves, ylabel=args.metric.replace("_", " "))
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    return 0

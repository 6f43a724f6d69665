"""The paper's evaluation protocol as a table: methods x tasks, median [25th, 75th] of the final evaluations.

Protocol (seed paper §V): evaluate every K steps for E episodes; keep each run's best parameters; at the end
re-evaluate them 5 x E episodes (`RunConfig.final_eval_repeats`, `loop.final_evaluation`, written to the run's
`final_eval.json`); report the median and the 25th / 75th percentiles over the concatenated re-evaluations of
all seeds (5 success rates per seed). A base policy alone gives the same record (`csil-lite evaluate --base ...
--repeats 5 --out DIR`), so it sits in the same table.

    csil-lite report RUN_DIR... [--table table.md] [--figure table.png]

`protocol_summary` computes the cells, `protocol_table` renders the Table-I-style markdown (the best median of
each task in bold), `protocol_figure` the same numbers as bars with their interquartile ranges. The sweep report
reads the same records. `load_runs` reads a folder of finished runs (one task) with their learning curves,
`curves_figure` draws them (median over seeds, 25th-75th band, the base alone dashed) and `initial_drops` gives
each seed's fall below its start. `paired_test` reads a pre-registered comparison (its settings.json and
<arm>_<seed> runs) and `paired_table` renders its primary (paired AUC) and secondary (steps to a threshold)
metrics.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence

import numpy as np

from csil_lite.errors import ArgumentParser, UserError, check_output_path

FINAL_EVAL = "final_eval.json"
FIELDS = ("method", "task", "seed", "success_rates")


def read_final_eval(run_dir: str | Path) -> dict[str, Any]:
    """The `final_eval.json` record of a run directory; a `UserError` naming the file if it is missing or bad."""
    path = Path(run_dir) / FINAL_EVAL
    if not path.is_file():
        raise UserError(f"{path}: missing; the run had no final evaluation (set final_eval_repeats, e.g. "
                        "--set final_eval_repeats=5, or the paper preset) or has not finished")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not readable JSON ({e})") from None
    missing = [f for f in FIELDS if f not in record]
    if missing or not record.get("success_rates"):
        raise UserError(f"{path}: expected the fields {FIELDS} with at least one success rate; missing {missing}")
    return record


def protocol_summary(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """{(method, task): {median, q25, q75, seeds, evaluations}} over the concatenated `success_rates` of every
    record (seed) of that method and task. A seed given twice for one cell is an error (a run counted twice)."""
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    seeds: dict[tuple[str, str], list[int]] = defaultdict(list)
    for r in records:
        key = (str(r["method"]), str(r["task"]))
        if r["seed"] in seeds[key]:
            raise ValueError(f"protocol_summary: seed {r['seed']} of {key[0]} on {key[1]} appears twice")
        seeds[key].append(r["seed"])
        values[key] += [float(v) for v in r["success_rates"]]
    out = {}
    for key, v in values.items():
        a = np.asarray(v, np.float64)
        out[key] = {"median": float(np.median(a)), "q25": float(np.percentile(a, 25)),
                    "q75": float(np.percentile(a, 75)), "seeds": len(seeds[key]), "evaluations": len(a)}
    return out


def _order(keys: Iterable[str], preferred: Sequence[str] | None) -> list[str]:
    keys = sorted(set(keys))
    if preferred is None:
        return keys
    return [k for k in preferred if k in keys] + [k for k in keys if k not in preferred]


def _cells(summary: dict[tuple[str, str], dict[str, float]], methods: Sequence[str] | None,
           tasks: Sequence[str] | None, digits: int) -> tuple[list[str], list[tuple[str, list]]]:
    """(tasks, [(method, [cell per task])]): a cell is None where a method has no runs on a task, else
    ('median [q25, q75]', whether its median is the task's best)."""
    ms = _order((m for m, _ in summary), methods)
    ts = _order((t for _, t in summary), tasks)
    best = {t: max((c["median"] for (m, tt), c in summary.items() if tt == t), default=None) for t in ts}
    rows = []
    for m in ms:
        cells = []
        for t in ts:
            c = summary.get((m, t))
            cells.append(None if c is None else
                         (f"{c['median']:.{digits}f} [{c['q25']:.{digits}f}, {c['q75']:.{digits}f}]",
                          c["median"] == best[t]))
        rows.append((m, cells))
    return ts, rows


def protocol_table(summary: dict[tuple[str, str], dict[str, float]], *, methods: Sequence[str] | None = None,
                   tasks: Sequence[str] | None = None, digits: int = 2) -> str:
    """Markdown: one row per method, one column per task, cells 'median [q25, q75]' (success rates), the best
    median of each task in bold, '-' where a method has no runs on a task."""
    ts, rows = _cells(summary, methods, tasks, digits)
    lines = ["| method | " + " | ".join(ts) + " |", "|---|" + "---|" * len(ts)]
    for m, cells in rows:
        text = ["-" if c is None else f"**{c[0]}**" if c[1] else c[0] for c in cells]
        lines.append(f"| {m} | " + " | ".join(text) + " |")
    return "\n".join(lines)


def protocol_html(summary: dict[tuple[str, str], dict[str, float]], *, methods: Sequence[str] | None = None,
                  tasks: Sequence[str] | None = None, digits: int = 2) -> str:
    """The table of `protocol_table` as an HTML table (for notebooks and the rendered book)."""
    import html

    ts, rows = _cells(summary, methods, tasks, digits)

    def td(c) -> str:
        if c is None:
            return "<td>-</td>"
        return f"<td><b>{html.escape(c[0])}</b></td>" if c[1] else f"<td>{html.escape(c[0])}</td>"

    out = ["<table>", "<thead><tr><th>method</th>" + "".join(f"<th>{html.escape(t)}</th>" for t in ts)
           + "</tr></thead>", "<tbody>"]
    out += [f"<tr><td>{html.escape(m)}</td>" + "".join(td(c) for c in cells) + "</tr>" for m, cells in rows]
    return "\n".join(out + ["</tbody>", "</table>"])


def protocol_figure(summary: dict[tuple[str, str], dict[str, float]], *, methods: Sequence[str] | None = None,
                    tasks: Sequence[str] | None = None, ax=None):
    """Grouped bars (tasks on x, one bar per method) of the medians with 25th-75th whiskers; returns the axes."""
    import matplotlib.pyplot as plt

    ms = _order((m for m, _ in summary), methods)
    ts = _order((t for _, t in summary), tasks)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 1.6 * len(ts) * max(1, len(ms)) / 3, 3.2))
    width = 0.8 / max(1, len(ms))
    for i, m in enumerate(ms):
        xs, med, lo, hi = [], [], [], []
        for j, t in enumerate(ts):
            c = summary.get((m, t))
            if c is not None:
                xs.append(j - 0.4 + width * (i + 0.5))
                med.append(c["median"])
                lo.append(c["median"] - c["q25"])
                hi.append(c["q75"] - c["median"])
        ax.bar(xs, med, width, yerr=[lo, hi], capsize=3, label=m)
    ax.set_xticks(range(len(ts)), ts)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (best params, re-evaluated)")
    ax.legend(fontsize=8, frameon=False, ncol=min(3, len(ms)))
    return ax


class StoredRuns(NamedTuple):
    """Finished runs of one task, read by `load_runs`: `records` (their final_eval.json records), `summary`
    (`protocol_summary` of them), `curves` ({method: (env steps [E], success rates [seeds, E])}, runs with
    metrics.jsonl only: the base alone has no curve), `learning_starts` (the first curve's run's) and `settings`
    (the folder's settings.json, {} without one)."""

    settings: dict
    records: list
    summary: dict
    curves: dict
    learning_starts: int | None

    @property
    def task(self) -> str:
        return str(self.records[0]["task"])

    def cell(self, method: str) -> dict[str, float]:
        """The protocol cell (median, q25, q75, ...) of `method` on this task."""
        return self.summary[(method, self.task)]


def load_runs(folder: str | Path) -> StoredRuns:
    """Every run directory under `folder` that holds a final_eval.json, with its evaluations' curve."""
    folder = Path(folder)
    run_dirs = sorted(d for d in folder.iterdir() if (d / FINAL_EVAL).exists())
    if not run_dirs:
        raise UserError(f"{folder}: no finished runs (directories with {FINAL_EVAL})")
    records = [read_final_eval(d) for d in run_dirs]
    rows: dict[str, list[list[dict]]] = defaultdict(list)
    learning_starts = None
    for d, record in zip(run_dirs, records):
        metrics = d / "metrics.jsonl"
        if metrics.exists():
            rows[record["method"]].append([json.loads(ln) for ln in metrics.read_text().splitlines() if ln.strip()])
            if learning_starts is None and (d / "config.json").exists():
                learning_starts = json.loads((d / "config.json").read_text()).get("learning_starts")
    curves = {}
    for method, runs in rows.items():
        steps = [r["step"] for r in runs[0]]
        if any([r["step"] for r in run] != steps for run in runs):
            raise ValueError(f"{folder}: the runs of {method!r} were evaluated at different steps")
        curves[method] = (np.asarray(steps), np.asarray([[r["success_rate"] for r in run] for run in runs]))
    settings_file = folder / "settings.json"
    settings = json.loads(settings_file.read_text()) if settings_file.exists() else {}
    return StoredRuns(settings, records, protocol_summary(records), curves, learning_starts)


def threshold_summary(run_dirs: Iterable[str | Path], threshold: float, *, smooth: int = 1,
                      labels: dict[str, str] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """{(method, task): {median, q25, q75, reached, seeds, steps}}: the env steps each run took to reach success
    `threshold` (`evaluation.steps_to_threshold`, on a `smooth`-evaluation trailing mean), from its config.json and
    metrics.jsonl. A run that never reached it counts as infinitely slow, so a median over seeds is finite only if
    more than half of them reached it; `steps` lists each seed's (None: not reached), `reached` how many did.
    `labels` ({run_dir: name}, a sweep's arms) names a run's method; by default `loop.method_label` of its config."""
    from csil_lite.config import RunConfig
    from csil_lite.evaluation import steps_to_threshold
    from csil_lite.loop import method_label, read_metrics

    per: dict[tuple[str, str], dict[int, float | None]] = defaultdict(dict)
    for d in map(Path, run_dirs):
        if not (d / "config.json").is_file():
            raise UserError(f"{d}: not a run directory (no config.json)")
        cfg = RunConfig.from_dict(json.loads((d / "config.json").read_text()))
        rows = read_metrics(d)
        if not rows:
            raise UserError(f"{d}: no evaluations yet (metrics.jsonl is empty)")
        key = ((labels or {}).get(str(d)) or method_label(cfg), cfg.task)
        if cfg.seed in per[key]:
            raise ValueError(f"threshold_summary: seed {cfg.seed} of {key[0]} on {key[1]} appears twice")
        per[key][cfg.seed] = steps_to_threshold([r["step"] for r in rows], [r["success_rate"] for r in rows],
                                                threshold, smooth=smooth)
    out = {}
    for key, by_seed in per.items():
        steps = [by_seed[s] for s in sorted(by_seed)]
        a = np.array([np.inf if v is None else v for v in steps], np.float64)
        # quartiles are seeds' own values (no interpolation: a run that never reached it stays 'never')
        out[key] = {"median": float(np.median(a)), "q25": float(np.percentile(a, 25, method="inverted_cdf")),
                    "q75": float(np.percentile(a, 75, method="inverted_cdf")), "reached": int(np.isfinite(a).sum()),
                    "seeds": len(a), "steps": steps}
    return out


def _steps(v: float) -> str:
    return "never" if not np.isfinite(v) else f"{v / 1000:.0f}k" if v >= 1000 else f"{v:.0f}"


def threshold_table(summary: dict[tuple[str, str], dict[str, Any]], threshold: float, *, smooth: int = 1,
                    methods: Sequence[str] | None = None, tasks: Sequence[str] | None = None) -> str:
    """Markdown: env steps to `threshold` success, 'median [q25, q75] (reached/seeds)' per method and task; the
    fastest median of each task in bold; 'never' where a quantile is a run that did not reach it."""
    ms, ts = _order((m for m, _ in summary), methods), _order((t for _, t in summary), tasks)
    best = {t: min((c["median"] for (m, tt), c in summary.items() if tt == t), default=np.inf) for t in ts}
    avg = f", {smooth}-evaluation mean" if smooth > 1 else ""
    lines = [f"env steps to success >= {threshold:g}{avg}: median [25th, 75th] (seeds that reached it)", "",
             "| method | " + " | ".join(ts) + " |", "|---|" + "---|" * len(ts)]
    for m in ms:
        cells = []
        for t in ts:
            c = summary.get((m, t))
            if c is None:
                cells.append("-")
                continue
            text = f"{_steps(c['median'])} [{_steps(c['q25'])}, {_steps(c['q75'])}] ({c['reached']}/{c['seeds']})"
            cells.append(f"**{text}**" if np.isfinite(c["median"]) and c["median"] == best[t] else text)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def initial_drops(runs: StoredRuns) -> dict[str, np.ndarray]:
    """Per method, each seed's lowest evaluation minus its first (step 0, the start it was initialised at)."""
    return {m: values.min(axis=1) - values[:, 0] for m, (_, values) in runs.curves.items()}


def curves_figure(runs: StoredRuns, methods: Sequence[str] | None = None, ax=None, base: str = "base"):
    """Success against env steps: each method's median over seeds with its 25th-75th band, the base alone's
    protocol median dashed, where updates start dotted. Returns the axes."""
    import matplotlib.pyplot as plt

    from csil_lite.plotting import plot_curves

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.6))
    plot_curves(ax, {m: runs.curves[m] for m in _order(runs.curves, methods)})
    if (base, runs.task) in runs.summary:
        ax.axhline(runs.cell(base)["median"], color="k", ls="--", lw=1, label="base alone (median)")
    if runs.learning_starts:
        ax.axvline(runs.learning_starts, color="0.6", lw=0.8, ls=":", label="updates start")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return ax


class PairedTest(NamedTuple):
    """A pre-registered comparison read back (`paired_test`): `settings` (its settings.json), per (arm, seed) of the
    finished runs `auc` (`evaluation.success_auc` over 0..env_steps), `reach` (env steps to the threshold on the
    smoothed curve, None: not reached) and `curves` ((steps, success)); `missing`: the (arm, seed) pairs of the
    settings without a finished run; `paired`: {arm: (common seeds, arm's AUC minus the reference arm's)} for
    every primary arm but the first (the reference)."""

    settings: dict
    auc: dict
    reach: dict
    curves: dict
    missing: list
    paired: dict

    @property
    def reference(self) -> str:
        return self.settings["primary_arms"][0]

    def complete(self, arms: Sequence[str] | None = None) -> bool:
        """Every seed of `arms` (default: the primary arms) finished."""
        arms = self.settings["primary_arms"] if arms is None else arms
        return all((a, s) in self.auc for a in arms for s in self.settings["seeds"])


def paired_test(folder: str | Path) -> PairedTest:
    """Read a pre-registered comparison: `folder`/settings.json (written before any run: `arms`, `seeds`,
    `primary_arms`, `env_steps`, `threshold`, `smooth`) and its finished runs `folder`/<arm>_<seed> (those with a
    summary.json). The primary metric is the paired area under the success curve, arm minus reference per common
    seed; the secondary the steps to the threshold on a `smooth`-evaluation trailing mean."""
    from csil_lite.evaluation import steps_to_threshold, success_auc
    from csil_lite.loop import read_metrics

    folder = Path(folder)
    if not (folder / "settings.json").is_file():
        raise UserError(f"{folder}: no settings.json (a pre-registered comparison writes it before its runs)")
    spec = json.loads((folder / "settings.json").read_text())
    need = {"arms", "seeds", "primary_arms", "env_steps", "threshold", "smooth"} - set(spec)
    if need:
        raise UserError(f"{folder}/settings.json lacks {sorted(need)}")
    auc, reach, curves, missing = {}, {}, {}, []
    for arm in spec["arms"]:
        for seed in spec["seeds"]:
            d = folder / f"{arm}_{seed}"
            if not (d / "summary.json").is_file():
                missing.append((arm, seed))
                continue
            rows = read_metrics(d)
            steps = np.array([r["step"] for r in rows], float)
            success = np.array([r["success_rate"] for r in rows], float)
            if steps[-1] < spec["env_steps"]:
                raise ValueError(f"{d}: finished at {steps[-1]:,.0f} env steps, the settings say {spec['env_steps']:,}")
            curves[(arm, seed)] = (steps, success)
            auc[(arm, seed)] = success_auc(steps, success, spec["env_steps"])
            reach[(arm, seed)] = steps_to_threshold(steps, success, spec["threshold"], smooth=spec["smooth"])
    ref = spec["primary_arms"][0]
    paired = {}
    for arm in spec["primary_arms"][1:]:
        common = [s for s in spec["seeds"] if (arm, s) in auc and (ref, s) in auc]
        paired[arm] = (common, np.array([auc[(arm, s)] - auc[(ref, s)] for s in common]))
    return PairedTest(spec, auc, reach, curves, missing, paired)


def _paired_parts(test: PairedTest) -> tuple[str, list[str], list[tuple[str, list[str]]], list[str]]:
    """(title, column heads, [(arm, cells)] for arms with a finished run, lines on the paired differences)."""
    spec = test.settings
    end = spec["env_steps"]
    title = (f"AUC of success over 0-{end:,} env steps (env steps to {spec['threshold']:g} on a {spec['smooth']}-"
             f"evaluation mean; >{end // 1000}k: not reached)")
    rows = []
    for arm in spec["arms"]:
        cells = []
        for seed in spec["seeds"]:
            if (arm, seed) not in test.auc:
                cells.append("-")
                continue
            r = test.reach[(arm, seed)]
            cells.append(f"{test.auc[(arm, seed)]:.3f} ({f'>{end // 1000}k' if r is None else _steps(r)})")
        if any(c != "-" for c in cells):
            rows.append((arm, cells))
    notes = []
    for arm, (seeds, d) in test.paired.items():
        if not seeds:
            notes.append(f"paired AUC {arm} - {test.reference}: no common seed finished yet")
            continue
        spread = f", std {d.std(ddof=1):.3f}" if len(d) > 1 else ""
        notes.append(f"paired AUC {arm} - {test.reference} over seeds {seeds}: "
                     + ", ".join(f"{x:+.3f}" for x in d) + f"; mean {d.mean():+.3f}{spread}")
    return title, [f"seed {s}" for s in spec["seeds"]], rows, notes


def paired_table(test: PairedTest) -> str:
    """Markdown: per arm and seed 'AUC (steps to threshold)', '-' for a run not finished; then the paired
    differences against the reference arm with their mean and standard deviation over common seeds."""
    title, heads, rows, notes = _paired_parts(test)
    lines = [title, "", "| arm | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    lines += [f"| {arm} | " + " | ".join(cells) + " |" for arm, cells in rows]
    return "\n".join(lines + [""] + notes)


def paired_html(test: PairedTest) -> str:
    """`paired_table` as HTML (for notebooks and the rendered book)."""
    import html

    title, heads, rows, notes = _paired_parts(test)
    out = [f"<p>{html.escape(title)}</p>", "<table>", "<thead><tr><th>arm</th>"
           + "".join(f"<th>{html.escape(h)}</th>" for h in heads) + "</tr></thead>", "<tbody>"]
    out += [f"<tr><td>{html.escape(arm)}</td>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
            for arm, cells in rows]
    out += ["</tbody>", "</table>"] + [f"<p>{html.escape(n)}</p>" for n in notes]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="csil-lite report", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="run directories (holding final_eval.json for the protocol table); "
                   "with --sweep, the sweep's --out directory")
    p.add_argument("--sweep", default=None, metavar="FILE",
                   help="report the runs of this sweep file found under the one directory given, with the file's "
                        "[report] threshold and smooth")
    p.add_argument("--threshold", type=float, default=None,
                   help="also tabulate the env steps each method took to reach this success rate")
    p.add_argument("--smooth", type=int, default=None, help="... on a trailing mean of this many evaluations")
    p.add_argument("--table", default=None, help="write the markdown table(s) here (default: print them)")
    p.add_argument("--figure", default=None, help="also draw the protocol table as bars into this image")
    args = p.parse_args(argv)
    for flag, path in (("--table", args.table), ("--figure", args.figure)):
        if path:
            check_output_path(flag, path)
    runs, threshold, smooth = list(args.runs), args.threshold, args.smooth
    if args.sweep:
        from csil_lite.sweep import expand_file, read_sweep_file

        if len(runs) != 1:
            raise UserError("report --sweep FILE takes one directory: the sweep's --out")
        sweep_spec = read_sweep_file(args.sweep)
        spec = sweep_spec.get("report", {})
        threshold = spec.get("threshold") if threshold is None else threshold
        smooth = spec.get("smooth") if smooth is None else smooth
        expanded = expand_file(args.sweep)
        found = [Path(runs[0]) / r.name for r in expanded]
        runs = [str(d) for d in found if (d / "metrics.jsonl").is_file()]
        print(f"{len(runs)} of the sweep's {len(found)} runs have evaluations under {args.runs[0]}")
        if not runs:
            raise UserError(f"{args.runs[0]}: none of {args.sweep}'s runs has started there")
    tables = []
    finals = [r for r in runs if (Path(r) / FINAL_EVAL).is_file()]
    if finals or threshold is None:
        summary = protocol_summary(read_final_eval(r) for r in (finals if threshold is not None else runs))
        tables.append(protocol_table(summary))
    if threshold is not None:
        if not 0 < threshold <= 1 or (smooth is not None and smooth < 1):
            raise UserError(f"--threshold {threshold} / --smooth {smooth}: need a success rate in (0, 1] and "
                            "smooth >= 1")
        labels = None  # a sweep file's arms name its methods (with a [grid] variant's suffix)
        if args.sweep and sweep_spec.get("arms"):
            labels = {str(Path(args.runs[0]) / r.name): r.arm + r.variant for r in expanded}
        tables.append(threshold_table(threshold_summary(runs, threshold, smooth=smooth or 1, labels=labels), threshold,
                                      smooth=smooth or 1))
    table = "\n\n".join(tables)
    if args.table:
        Path(args.table).write_text(table + "\n")
    print(table)
    if args.figure and finals:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ax = protocol_figure(summary)
        ax.figure.tight_layout()
        ax.figure.savefig(args.figure, dpi=150)
        plt.close(ax.figure)
    return 0

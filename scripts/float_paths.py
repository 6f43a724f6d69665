"""Run the chapters (preview mode) under several XLA CPU floating-point paths and print their figures side by side.

XLA compiles different CPU code for different instruction sets, so a trained number differs from machine to
machine with the same seed. One machine shows a second path with `XLA_FLAGS=--xla_cpu_max_isa=SSE4_2` (and AVX2
on a machine with AVX-512). Every chapter's claims must hold on each path; this script checks that routinely:

    python scripts/float_paths.py [--chapters 05 06] [--paths default SSE4_2 AVX2] [--reuse default=DIR]
                                  [--jobs 2] [--out FILE.json]

For each path it executes each chapter (a jupytext .md under book/, converted in a scratch directory) in a fresh
kernel, records every glued figure (`myst_nb.glue`, which is what the prose shows and what the assertions test),
whether the chapter raised (which cell, which error) and the kernel's peak memory (VmHWM of the kernel process).
`--reuse default=DIR` reads the default path's figures from notebooks already executed there (e.g. by `make test`
in build-notebooks/book) instead of running them again. A path equal to the machine's own best instruction set is
skipped (it is the default path). Exit status 1 when any chapter raised on any path.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PEAK_CELL = ("import os as _o\n_p = [l for l in open(f'/proc/{_o.getpid()}/status') if l.startswith('VmHWM')]\n"
             "print('CSIL_PEAK_KB', _p[0].split()[1] if _p else -1)")


def machine_isa() -> str:
    """The best of AVX512 / AVX2 / SSE4_2 this CPU has (what XLA's default path uses)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    return "AVX512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE4_2"


def glued(nb) -> dict[str, str]:
    """name -> the glued value's text as the page shows it."""
    out = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            meta = o.get("metadata", {}).get("scrapbook")
            if meta:  # myst_nb.glue: the value's mime bundle under the prefix the metadata names
                data = o.get("data", {})
                value = data.get(meta.get("mime_prefix", "") + "text/plain", data.get("text/plain", ""))
                out[meta["name"]] = str(value).strip()
    return out


def errors(nb) -> list[str]:
    found, n = [], 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        n += 1
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                value = ANSI.sub("", o.get("evalue", ""))[:200]
                found.append(f"code cell {n}: {o.get('ename')}: {value}")
    return found


def run_chapter(md: Path, path: str, workdir: Path) -> dict:
    """Execute one chapter under one float path in a fresh kernel; never raises (a dead kernel is an error)."""
    try:
        return _run_chapter(md, path, workdir)
    except Exception as exc:  # noqa: BLE001 - e.g. DeadKernelError (out of memory): report it, keep the others
        return {"chapter": md.stem, "path": path, "seconds": None, "peak_mb": None, "glue": {},
                "errors": [f"the run failed: {type(exc).__name__}: {str(exc)[:200]}"]}


def _run_chapter(md: Path, path: str, workdir: Path) -> dict:
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = jupytext.read(md, fmt="md:myst")
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    env = dict(os.environ, CSIL_PREVIEW="1", PYTHONHASHSEED="0")
    if path != "default":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_cpu_max_isa={path}").strip()
    client = NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    t0 = time.perf_counter()
    peak_kb = -1
    with client.setup_kernel(env=env, cwd=str(workdir)):
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            last = i == len(nb.cells) - 1
            try:
                client.execute_cell(cell, i)
            except CellExecutionError:
                if not last:  # skip to the memory probe
                    client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
                break
        for o in nb.cells[-1].get("outputs", []):
            m = re.search(r"CSIL_PEAK_KB (\d+)", o.get("text", ""))
            if m:
                peak_kb = int(m.group(1))
    return {"chapter": md.stem, "path": path, "seconds": round(time.perf_counter() - t0, 1),
            "peak_mb": round(peak_kb / 1024) if peak_kb >= 0 else None, "glue": glued(nb), "errors": errors(nb)}


def from_executed(directory: Path, stem: str) -> dict | None:
    import nbformat

    f = directory / f"{stem}.ipynb"
    if not f.is_file():
        return None
    nb = nbformat.read(f, as_version=4)
    return {"chapter": stem, "path": "default", "seconds": None, "peak_mb": None, "glue": glued(nb),
            "errors": errors(nb)}


def fmt(v: str | None) -> str:
    if v is None:
        return "-"
    try:
        x = float(v)
    except ValueError:
        return v[:18]
    return f"{x:.4g}"


def table(results: list[dict], paths: list[str]) -> str:
    lines = []
    by = {(r["chapter"], r["path"]): r for r in results}
    for chapter in sorted({r["chapter"] for r in results}):
        rows = [by.get((chapter, p)) for p in paths]
        lines.append(f"\n== {chapter}   " + "   ".join(
            f"{p}: {'RAISED' if r and r['errors'] else 'ok' if r else 'not run'}"
            + (f", {r['seconds']} s" if r and r['seconds'] else "") + (f", peak {r['peak_mb']} MB" if r and r['peak_mb'] else "")
            for p, r in zip(paths, rows)))
        for r, p in zip(rows, paths):
            for e in (r or {}).get("errors", []):
                lines.append(f"   [{p}] {e}")
        names = sorted({k for r in rows if r for k in r["glue"]})
        if names:
            lines.append(f"   {'figure':34s}" + "".join(f"{p:>14s}" for p in paths) + "   differs")
        for k in names:
            vals = [(r or {}).get("glue", {}).get(k) for r in rows]
            differs = "   *" if len({v for v in vals if v is not None}) > 1 else ""
            lines.append(f"   {k:34s}" + "".join(f"{fmt(v):>14s}" for v in vals) + differs)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chapters", nargs="*", default=None, help="chapter numbers or stems (default: all)")
    ap.add_argument("--paths", nargs="+", default=["default", "SSE4_2", "AVX2"])
    ap.add_argument("--reuse", action="append", default=[], metavar="PATH=DIR",
                    help="read PATH's figures from notebooks already executed in DIR")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args(argv)

    chapters = sorted((ROOT / "book").glob("[0-9][0-9]_*.md"))
    if args.chapters:
        chapters = [c for c in chapters if any(c.stem.startswith(x) for x in args.chapters)]
        if not chapters:
            ap.error(f"no chapter matches {args.chapters}")
    isa = machine_isa()
    paths = [p for p in args.paths if p == "default" or p.upper() != isa]
    skipped = sorted(set(args.paths) - set(paths))
    print(f"machine's instruction set: {isa}; paths: {paths}" + (f" (skipped {skipped}: the default here)" if skipped else ""))
    reuse = dict(r.split("=", 1) for r in args.reuse)

    results, jobs = [], []
    scratch = Path(tempfile.mkdtemp(prefix="float_paths_"))
    try:
        # chapters read book/_artefacts relative to their own directory: run each in a copy of book/
        work = scratch / "book"
        shutil.copytree(ROOT / "book", work)
        with cf.ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for path in paths:
                for md in chapters:
                    if path in reuse:
                        r = from_executed(Path(reuse[path]), md.stem)
                        if r is not None:
                            r["path"] = path
                            results.append(r)
                            continue
                    jobs.append(pool.submit(run_chapter, work / md.name, path, work))
            for fut in cf.as_completed(jobs):
                r = fut.result()
                print(f"  {r['chapter']} [{r['path']}] {'RAISED' if r['errors'] else 'ok'} in {r['seconds']} s, "
                      f"peak {r['peak_mb']} MB", flush=True)
                results.append(r)
                if args.out:  # written as the runs finish: nothing is lost when a later one is interrupted
                    args.out.write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(table(results, paths))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    failed = [(r["chapter"], r["path"]) for r in results if r["errors"]]
    if failed:
        print(f"\nFLOAT PATHS: chapters raised: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""After `jupyter-book build`: fail, naming chapter, cell and error, if any chapter raised while it was executed.

jupyter-book (with `--keep-going`) builds every page it can and returns 0 even when a chapter's execution failed:
the page then shows the traceback and its glued numbers are blank. `make book` runs this right after the build
so that the job fails loudly instead. It reads the executed notebooks (`_build/jupyter_execute/`) and myst-nb's
failure reports (`_build/html/reports/`), for the chapters listed in `_toc.yml`.

Usage: python scripts/check_book_build.py [BOOK_ROOT]   (exit 1 and one block per failed chapter)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def toc_files(root: Path) -> list[str]:
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]
    for entry in toc.get("chapters", []):
        files.append(entry["file"])
    for part in toc.get("parts", []):
        files += [entry["file"] for entry in part.get("chapters", [])]
    return [f.removesuffix(".md") for f in files]


def failed_cells(notebook: Path) -> list[str]:
    """One line per cell with an error output: which code cell, its first source line, the exception."""
    cells = json.loads(notebook.read_text())["cells"]
    out, n_code = [], 0
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        n_code += 1
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                src = "".join(cell["source"]).strip().splitlines()
                first = next((line for line in src if line.strip() and not line.startswith(("#", "---"))), "")
                value = ANSI.sub("", o.get("evalue", "")).strip().splitlines()
                out.append(f"code cell {n_code} ({first[:70]!r}): {o.get('ename', 'Error')}: "
                           f"{value[0][:200] if value else ''}")
    return out


def report_error(log: Path) -> str:
    """The last exception line of a myst-nb failure report."""
    lines = [ANSI.sub("", x).rstrip() for x in log.read_text(errors="replace").splitlines()]
    hits = [x for x in lines if re.match(r"^[A-Za-z_.]*(Error|Exception|Interrupt)\b", x.strip())]
    return hits[-1].strip() if hits else (lines[-1] if lines else "(empty report)")


def check(root: Path) -> list[str]:
    build = root / "_build"
    problems = []
    for doc in toc_files(root):
        executed = build / "jupyter_execute" / f"{doc}.ipynb"
        report = build / "html" / "reports" / f"{doc}.err.log"
        cells = failed_cells(executed) if executed.is_file() else []
        if cells or report.is_file():
            lines = cells or [f"(no executed notebook) {report_error(report)}"]
            where = f"   report: {report.relative_to(root)}" if report.is_file() else ""
            problems.append(f"chapter {doc}.md failed while executing:\n" + "\n".join(f"  {x}" for x in lines)
                            + (f"\n{where}" if where else ""))
    return problems


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else ".")
    problems = check(root)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"BOOK BUILD FAILED: {len(problems)} chapter(s) raised; their pages show a traceback and blank "
              f"numbers.", file=sys.stderr)
        return 1
    print(f"book check: every chapter of {root / '_toc.yml'} executed without an error")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

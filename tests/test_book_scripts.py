"""The book's checking scripts read what they claim to read: glued figures and errors from executed notebooks
(scripts/float_paths.py) and glue roles from chapter sources (scripts/check_pages.py)."""

import importlib.util
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def executed_notebook(value: str, error: bool) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    ok = nbformat.v4.new_code_cell("glue('x', 1.5)")
    prefix = "application/papermill.record/"  # what myst_nb.glue(..., display=False) writes
    ok.outputs = [nbformat.v4.new_output("display_data", data={prefix + "text/plain": value},
                                         metadata={"scrapbook": {"name": "x", "mime_prefix": prefix}})]
    nb.cells = [nbformat.v4.new_markdown_cell("# T"), ok]
    if error:
        bad = nbformat.v4.new_code_cell("assert False")
        bad.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="\x1b[31mmargin\x1b[0m",
                                              traceback=[])]
        nb.cells.append(bad)
    return nb


def test_float_paths_reads_glue_and_errors_and_marks_differences(tmp_path):
    fp = load("float_paths")
    a, b = executed_notebook("1.5", error=False), executed_notebook("1.5000002", error=True)
    assert fp.glued(a) == {"x": "1.5"} and fp.errors(a) == []
    assert fp.errors(b) == ["code cell 2: AssertionError: margin"]
    nbformat.write(b, tmp_path / "05_x.ipynb")
    reused = fp.from_executed(tmp_path, "05_x")
    assert reused["glue"] == {"x": "1.5000002"} and reused["errors"]
    rows = [{"chapter": "05_x", "path": "default", "seconds": 1.0, "peak_mb": 900, "glue": fp.glued(a), "errors": []},
            {**reused, "path": "SSE4_2"}]
    text = fp.table(rows, ["default", "SSE4_2"])
    assert "SSE4_2: RAISED" in text and "peak 900 MB" in text
    line = next(x for x in text.splitlines() if x.strip().startswith("x "))
    assert line.rstrip().endswith("*"), line  # 1.5 vs 1.5000002: the figure differs between the paths


def test_check_pages_counts_glue_roles_in_md_and_ipynb(tmp_path):
    cp = load("check_pages")
    md = tmp_path / "01_a.md"
    md.write_text("A {glue:text}`a:.2f` and {glue}`b`, not `glue` or {numref}`fig-x`.\n")
    assert cp.glue_roles(md) == 2
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("{glue:text}`a` {glue:math}`m`"),
                nbformat.v4.new_code_cell("glue('a', 1)  # {glue:text}`not prose`")]
    nbformat.write(nb, tmp_path / "02_b.ipynb")
    assert cp.glue_roles(tmp_path / "02_b.ipynb") == 2
    assert set(cp.chapter_sources(tmp_path)) == {"01_a", "02_b"}

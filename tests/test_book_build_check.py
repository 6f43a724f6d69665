"""`make book` fails loudly: a chapter that raises makes it exit non-zero, naming the chapter, the cell and the error,
after building every page it could (issue: the main job returned 0 with chapter 5 broken)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


def scratch_book(tmp_path: Path, failing: bool) -> Path:
    book = tmp_path / "book"
    book.mkdir(parents=True)
    (tmp_path / "_config.yml").write_text(
        "title: scratch\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: cache\n  allow_errors: false\n")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/01_fine\n  - file: book/02_breaks\n")
    (book / "intro.md").write_text("# Intro\n\nA scratch book.\n")
    (book / "01_fine.md").write_text(HEADER + "# Fine\n\n```{code-cell} ipython3\nprint('fine')\n```\n")
    bad = "x = 1\nassert x == 2, 'the claim does not hold'" if failing else "x = 2\nassert x == 2"
    (book / "02_breaks.md").write_text(
        HEADER + "# Breaks\n\n```{code-cell} ipython3\nprint('first')\n```\n\n"
        f"```{{code-cell}} ipython3\n{bad}\n```\n")
    return tmp_path


def make_book(root: Path) -> subprocess.CompletedProcess:
    if not (ROOT / ".venv" / ".installed").is_file() or shutil.which("make") is None:
        pytest.skip("needs `make install` (the .venv this repository's Makefile uses)")
    return subprocess.run(["make", "-s", "-C", str(ROOT), "book", f"BOOK_ROOT={root}"], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_make_book_fails_naming_chapter_cell_and_error(tmp_path):
    root = scratch_book(tmp_path, failing=True)
    proc = make_book(root)
    err = proc.stderr
    assert proc.returncode != 0, (proc.stdout[-2000:], err[-2000:])
    assert "book/02_breaks.md" in err and "code cell 2" in err, err[-2000:]
    assert "AssertionError: the claim does not hold" in err, err[-2000:]
    assert "01_fine" not in err.split("BOOK BUILD FAILED")[0].split("02_breaks")[0], err  # only the broken one
    assert (root / "_build" / "html" / "book" / "01_fine.html").is_file()  # the other pages were still built

    # fixed: the same build (cache kept) passes
    (root / "book" / "02_breaks.md").write_text(
        (root / "book" / "02_breaks.md").read_text().replace("x = 1", "x = 2"))
    proc = make_book(root)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])

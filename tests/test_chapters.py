"""Guards on the book sources: every chapter reads the preview toggle and is listed in the table of contents."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.md"))


def test_there_are_chapters():
    assert len(CHAPTERS) >= 1


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_first_code_cell_is_the_preview_parameters_cell(chapter):
    text = chapter.read_text()
    cells = re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, flags=re.S)
    assert cells, f"{chapter.name} has no code cells"
    first = cells[0]
    assert ":tags: [parameters]" in first, f"{chapter.name}: first code cell is not tagged 'parameters'"
    assert 'PREVIEW = os.environ.get("CSIL_PREVIEW", "1") != "0"' in first, f"{chapter.name} ignores CSIL_PREVIEW"
    assert "banner(PREVIEW" in first, f"{chapter.name}: no preview banner in the parameters cell"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_chapter_is_in_the_toc(chapter):
    toc = (ROOT / "_toc.yml").read_text()
    assert f"book/{chapter.stem}" in toc, f"{chapter.name} is not listed in _toc.yml"


def test_no_notebooks_inside_book():
    assert not list((ROOT / "book").glob("*.ipynb")), "generate .ipynb only in scratch copies"

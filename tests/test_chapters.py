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
    assert re.search(r":tags: \[parameters\b", first), f"{chapter.name}: first code cell is not tagged 'parameters'"
    assert 'PREVIEW = os.environ.get("CSIL_PREVIEW", "1") != "0"' in first, f"{chapter.name} ignores CSIL_PREVIEW"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_the_title_comes_first_and_the_banner_right_under_it(chapter):
    """A reader sees the chapter's title first: the parameters cell before it is hidden (`remove-cell`) unless the
    title already precedes it (chapter 0 shows the cell on purpose), and the banner cell follows the title."""
    text = chapter.read_text()
    title = re.search(r"^# \d+\. .+$", text, flags=re.M)
    assert title, f"{chapter.name}: no '# N. Title' heading"
    first_cell = text.index("```{code-cell}")
    if first_cell < title.start():
        assert ":tags: [parameters, remove-cell]" in text[first_cell:title.start()], chapter.name
        assert "banner(" not in text[:title.start()], f"{chapter.name}: the banner shows above the title"
    after = text[title.end():]
    prose_before_banner = after[:after.index("banner(PREVIEW")]
    assert prose_before_banner.count("```{code-cell}") == 1, f"{chapter.name}: the banner is not the first cell under the title"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_chapter_is_in_the_toc(chapter):
    toc = (ROOT / "_toc.yml").read_text()
    assert f"book/{chapter.stem}" in toc, f"{chapter.name} is not listed in _toc.yml"


def test_no_notebooks_inside_book():
    assert not list((ROOT / "book").glob("*.ipynb")), "generate .ipynb only in scratch copies"

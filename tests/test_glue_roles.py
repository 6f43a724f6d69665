"""Every glue role in a chapter is well formed: `{glue:text}`key:format`` with a plain key and a format spec
without braces (a brace typed for the closing backtick makes the strict book build fail on a missing key)."""

import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`]*)`")
KEY = re.compile(r"^[A-Za-z_]\w*(?::[^{}\s]*)?$")


@pytest.mark.parametrize("chapter", sorted(BOOK.glob("*.md")), ids=lambda p: p.name)
def test_glue_roles_are_well_formed(chapter):
    text = chapter.read_text()
    bad = [m.group(1) for m in ROLE.finditer(text) if not KEY.match(m.group(1))]
    assert not bad, f"{chapter.name}: malformed glue roles {bad}"


def test_the_check_catches_a_brace_for_a_backtick():
    text = "allows {glue:text}`a_key:.2f`, {glue:text}`b_key:.0f} times less. {glue:text}`c_key`"
    assert [m.group(1) for m in ROLE.finditer(text) if not KEY.match(m.group(1))]

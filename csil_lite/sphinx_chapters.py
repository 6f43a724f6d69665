"""Sphinx extension: number figures, tables and equations per chapter ("Fig. 7.2", "(7.3)").

Sphinx numbers them across the whole book unless the table of contents is `numbered`, and a numbered toc
counts chapters by their position (our first chapter is chapter 0, and a chapter may be missing from the toc
while it is written), repeats the number in every heading (ours carry it already) and in the side bar.
Instead, each chapter takes its number from its file name (`book/07_manipulation.md` is chapter 7) and its
figures, tables, code listings and labelled equations are counted from 1 within it, in the order Sphinx found
them. References (`{numref}`, `{eq}`) read the same table, so they follow. Pages without a number in their
name (the intro) keep Sphinx's numbers.
"""

from __future__ import annotations

import re
from typing import Any

_CHAPTER = re.compile(r"(?:^|/)(\d+)_[^/]+$")


def chapter_number(docname: str) -> int | None:
    """The number in a chapter's document name: `book/07_manipulation` -> 7; None for `book/intro`."""
    match = _CHAPTER.search(docname)
    return int(match.group(1)) if match else None


def per_chapter(fignumbers: dict[str, dict[str, dict[str, tuple[int, ...]]]]) -> dict[str, dict[str, Any]]:
    """Renumber Sphinx's `env.toc_fignumbers` ({doc: {figtype: {node id: number tuple}}}) per chapter.

    Within a chapter document every figure type is counted 1, 2, ... in the order of Sphinx's own numbers, and
    the chapter number goes in front: (chapter, k). Documents without a chapter number are returned unchanged.
    """
    out: dict[str, dict[str, Any]] = {}
    for docname, by_type in fignumbers.items():
        chapter = chapter_number(docname)
        if chapter is None:
            out[docname] = by_type
            continue
        out[docname] = {
            figtype: {node_id: (chapter, k) for k, node_id in enumerate(sorted(numbers, key=numbers.get), 1)}
            for figtype, numbers in by_type.items()
        }
    return out


def _renumber(app, env) -> list[str]:
    if not env.config.numfig:
        return []
    new = per_chapter(env.toc_fignumbers)
    changed = [doc for doc in new if new[doc] != env.toc_fignumbers[doc]]
    env.toc_fignumbers = new
    return changed


def setup(app) -> dict:
    # After Sphinx's own toctree collector (priority 500) has assigned the book-wide numbers.
    app.connect("env-get-updated", _renumber, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

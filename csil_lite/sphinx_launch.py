"""Sphinx extension: the book's Colab button opens the chapter as a notebook that installs csil_lite first.

Colab opens only `.ipynb` files from GitHub, and the chapters are jupytext `.md` files, so sphinx-book-theme's
Colab link (`.../blob/<branch>/book/NN_x.md`) cannot work as is. The Pages workflow publishes every executed
chapter, with a Colab setup cell in front (`scripts/colab_notebooks.py`), to the branch `colab_branch`
(default "colab"); this extension points each page's Colab button there: `.../blob/colab/book/NN_x.ipynb`.
"""

from __future__ import annotations

import re
from typing import Any

_COLAB = re.compile(r"^(?P<base>https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/)"
                    r"[^/]+/(?P<path>.+?)\.(?:md|ipynb)$")


def colab_url(url: str, branch: str) -> str:
    """`.../blob/main/book/07_x.md` -> `.../blob/<branch>/book/07_x.ipynb`; other URLs unchanged."""
    match = _COLAB.match(url)
    return f"{match['base']}{branch}/{match['path']}.ipynb" if match else url


def _retarget(buttons: list[dict[str, Any]], branch: str) -> None:
    for button in buttons:
        if "buttons" in button:
            _retarget(button["buttons"], branch)
        elif button.get("text") == "Colab" and "url" in button:
            button["url"] = colab_url(button["url"], branch)


def _on_page(app, pagename, templatename, context, doctree) -> None:
    _retarget(context.get("header_buttons", []), app.config.colab_branch)


def setup(app) -> dict:
    app.add_config_value("colab_branch", "colab", "html")
    # After sphinx-book-theme has added its launch buttons (priority 501).
    app.connect("html-page-context", _on_page, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""Sphinx extension: serve MathJax from the built book when a local copy exists, else keep Sphinx's CDN default.

Why: the book is often built and read where no CDN is reachable (CI, a laptop on a train); with the CDN script
missing, every formula shows as raw TeX. `scripts/fetch-mathjax.sh` puts MathJax 3 from the npm registry in a cache
directory; this extension copies it into `_static/mathjax/` and points `mathjax_path` at it.
"""

from __future__ import annotations

import os
from pathlib import Path

VERSION = "3.2.2"


def mathjax_root() -> Path:
    """Directory holding `mathjax/tex-mml-chtml.js`: $CSIL_MATHJAX_DIR, else the user cache."""
    env = os.environ.get("CSIL_MATHJAX_DIR")
    return Path(env) if env else Path.home() / ".cache" / "csil_lite" / f"mathjax-{VERSION}"


def _use_local_copy(app, config) -> None:
    root = mathjax_root()
    if (root / "mathjax" / "tex-mml-chtml.js").is_file():
        config.html_static_path = [*config.html_static_path, str(root)]
        config.mathjax_path = "mathjax/tex-mml-chtml.js"


def setup(app) -> dict:
    app.connect("config-inited", _use_local_copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

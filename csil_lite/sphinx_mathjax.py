"""Sphinx extension: serve MathJax from the built book when a local copy exists, else keep Sphinx's CDN default.

Why: the book is often built and read where no CDN is reachable (CI, a laptop on a train); with the CDN script
missing, every formula shows as raw TeX. `python -m csil_lite.sphinx_mathjax` puts MathJax 3 from the npm registry in
a cache directory; the extension copies it into `_static/mathjax/` and points `mathjax_path` at it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "3.2.2"
LOADER = "tex-mml-chtml.js"


def mathjax_root() -> Path:
    """Directory holding `mathjax/tex-mml-chtml.js`: $CSIL_MATHJAX_DIR, else the user cache."""
    env = os.environ.get("CSIL_MATHJAX_DIR")
    return Path(env) if env else Path.home() / ".cache" / "csil_lite" / f"mathjax-{VERSION}"


def fetch(root: Path | None = None) -> bool:
    """Cache MathJax under `root` with `npm pack`; never raises (the book then uses the CDN). True if cached."""
    dest = (root or mathjax_root()) / "mathjax"
    if (dest / LOADER).is_file():
        return True
    if shutil.which("npm") is None:
        print("fetch-mathjax: npm not found; the book will load MathJax from its CDN", file=sys.stderr)
        return False
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(["npm", "pack", f"mathjax@{VERSION}", "--silent"], cwd=tmp, check=True, timeout=300,
                           capture_output=True)
            with tarfile.open(Path(tmp) / f"mathjax-{VERSION}.tgz") as tgz:
                tgz.extractall(tmp, filter="data")
        except (OSError, subprocess.SubprocessError, tarfile.TarError) as exc:
            print(f"fetch-mathjax: could not fetch mathjax@{VERSION} ({exc}); the book will load MathJax from its CDN",
                  file=sys.stderr)
            return False
        es5 = Path(tmp) / "package" / "es5"
        # The combined TeX+MathML loader, the TeX extensions it autoloads, the CHTML fonts and the menu's lazy parts.
        (dest / "output").mkdir(parents=True, exist_ok=True)
        shutil.copy(es5 / LOADER, dest)
        for part in ("input", "ui", "a11y"):
            shutil.copytree(es5 / part, dest / part, dirs_exist_ok=True)
        shutil.copytree(es5 / "output" / "chtml", dest / "output" / "chtml", dirs_exist_ok=True)
    print(f"fetch-mathjax: MathJax {VERSION} in {dest.parent}")
    return True


def _use_local_copy(app, config) -> None:
    root = mathjax_root()
    if (root / "mathjax" / LOADER).is_file():
        config.html_static_path = [*config.html_static_path, str(root)]
        config.mathjax_path = f"mathjax/{LOADER}"


def setup(app) -> dict:
    app.connect("config-inited", _use_local_copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    fetch()

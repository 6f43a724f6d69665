"""Write the executed chapters as Colab notebooks: a setup cell in front that, on Colab only, clones the
repository at the built commit, installs csil_lite from it and moves into book/ (where the chapters find their
stored _artefacts). Outputs of the book build are kept, so a reader sees the results before running anything.

    python scripts/colab_notebooks.py _build/jupyter_execute/book OUT/book \
        --repo https://github.com/o/r --ref SHA

The Pages workflow pushes OUT to the branch the book's Colab buttons open (csil_lite.sphinx_launch).
"""

import argparse
import sys
from pathlib import Path

import nbformat

SETUP = '''# Colab only: install csil_lite at the commit this book was built from (elsewhere it is installed).
import os, subprocess, sys
if "google.colab" in sys.modules and not os.path.isdir("/content/csil_lite"):
    subprocess.run(["git", "clone", "-q", "{repo}", "/content/csil_lite"], check=True)
    subprocess.run(["git", "-C", "/content/csil_lite", "checkout", "-q", "{ref}"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "/content/csil_lite[sim]"], check=True)
    os.chdir("/content/csil_lite/book")
    os.environ.setdefault("MUJOCO_GL", "egl")'''


def colab_notebook(nb: nbformat.NotebookNode, repo: str, ref: str) -> nbformat.NotebookNode:
    """A copy of `nb` with the Colab setup cell (tag `colab-setup`) first; never two such cells."""
    out = nbformat.from_dict(nb)
    out.cells = [c for c in out.cells if "colab-setup" not in c.get("metadata", {}).get("tags", [])]
    cell = nbformat.v4.new_code_cell(SETUP.format(repo=repo, ref=ref), metadata={"tags": ["colab-setup"]})
    if (out.nbformat, out.nbformat_minor) < (4, 5):  # cell ids exist from nbformat 4.5 on
        cell.pop("id", None)
    out.cells.insert(0, cell)
    out.metadata.setdefault("colab", {})["provenance"] = []
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="directory of executed chapter notebooks (NN_*.ipynb)")
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument("--repo", required=True, help="repository URL to clone on Colab")
    parser.add_argument("--ref", required=True, help="commit (or branch) to check out")
    args = parser.parse_args(argv)
    chapters = sorted(args.src.glob("[0-9][0-9]_*.ipynb"))
    if not chapters:
        print(f"colab_notebooks: no NN_*.ipynb chapters in {args.src}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for path in chapters:
        nb = colab_notebook(nbformat.read(path, as_version=4), args.repo, args.ref)
        nbformat.validate(nb)
        nbformat.write(nb, args.out / path.name)
    print(f"colab_notebooks: {len(chapters)} chapters -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write the chapters as Colab notebooks, with the outputs of the book build that just ran.

Each chapter (`book/NN_*.md`) is read with jupytext, its outputs are taken from the build's execution cache
(jupyter-cache, `_build/.jupyter_cache`), and a setup cell goes in front that, on Colab only, clones the
repository at the built commit, installs csil_lite from it and moves into book/ (where the chapters find their
stored _artefacts). A reader sees the results before running anything. Markdown cells that show library code
with a `{literalinclude}` directive (which only the book renders) get that code as a fenced python block
instead: the `:pyobject:` named, read from the same file with `ast`, as Sphinx shows it.

    python scripts/colab_notebooks.py book _colab/book --cache _build/.jupyter_cache \\
        --repo https://github.com/o/r --ref SHA

The Pages workflow pushes the output to the branch the book's Colab buttons open (csil_lite.sphinx_launch).
"""

import argparse
import ast
import re
import sys
import textwrap
from pathlib import Path

import jupytext
import nbformat
from jupyter_cache import get_cache

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


# A fenced {literalinclude} directive: its fence (``` or ~~~ or :::), the path and the `:option: value` lines.
LITERALINCLUDE = re.compile(
    r"^(?P<fence>`{3,}|~{3,}|:{3,})\{literalinclude\}[ \t]+(?P<path>\S+)[ \t]*\n"
    r"(?P<options>(?:[ \t]*:[\w-]+:.*\n)*)(?P=fence)[ \t]*$",
    re.M,
)


def pyobject_source(path: Path, name: str) -> str:
    """The source of the function or class `name` (`Class.method` for a method) in the Python file `path`,
    decorators included and dedented, as `literalinclude`'s `:pyobject:` shows it."""
    text = path.read_text()
    body = ast.parse(text, filename=str(path)).body
    node = None
    for part in name.split("."):
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            raise LookupError(f"{path}: no function or class {name!r} (missing {part!r})")
        body = node.body
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return textwrap.dedent("\n".join(text.splitlines()[start - 1:node.end_lineno]))


def inline_literalincludes(markdown: str, base: Path) -> str:
    """`markdown` with every {literalinclude} directive replaced by the code it shows, in a fenced block.

    Paths are relative to `base` (the chapter's directory), as in the book. The caption, if any, goes above
    the block in italics. A missing file or object raises LookupError naming it.
    """

    def code(match: re.Match) -> str:
        options = dict(re.findall(r"^[ \t]*:([\w-]+):[ \t]*(.*?)[ \t]*$", match["options"], flags=re.M))
        path = base / match["path"]
        if not path.is_file():
            raise LookupError(f"literalinclude {match['path']!r}: no such file {path}")
        source = pyobject_source(path, options["pyobject"]) if "pyobject" in options else path.read_text()
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", source)), default=0))
        block = f"{fence}{options.get('language', 'python')}\n{source.rstrip()}\n{fence}"
        return f"*{options['caption']}*\n\n{block}" if options.get("caption") else block

    return LITERALINCLUDE.sub(code, markdown)


def inline_notebook_literalincludes(nb: nbformat.NotebookNode, base: Path) -> nbformat.NotebookNode:
    """A copy of `nb` whose markdown cells show their {literalinclude} code inline."""
    out = nbformat.from_dict(nb)
    for cell in out.cells:
        if cell.cell_type == "markdown" and "{literalinclude}" in cell.source:
            cell.source = inline_literalincludes(cell.source, base)
    return out


def chapters(book: Path) -> list[Path]:
    """The notebook chapters: `NN_*.md` files with a kernelspec in their front matter."""
    found = []
    for md in sorted(book.glob("[0-9][0-9]_*.md")):
        text = md.read_text()
        if text.startswith("---") and "kernelspec:" in text.split("---", 2)[1]:
            found.append(md)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("book", type=Path, help="the chapters' directory (book/)")
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument("--cache", type=Path, required=True, help="the build's jupyter-cache directory")
    parser.add_argument("--repo", required=True, help="repository URL to clone on Colab")
    parser.add_argument("--ref", required=True, help="commit (or branch) to check out")
    args = parser.parse_args(argv)
    sources = chapters(args.book)
    if not sources:
        print(f"colab_notebooks: no NN_*.md chapters in {args.book}", file=sys.stderr)
        return 2
    if not args.cache.is_dir():
        print(f"colab_notebooks: --cache {args.cache} is not a directory (build the book first)",
              file=sys.stderr)
        return 2
    cache = get_cache(args.cache)
    args.out.mkdir(parents=True, exist_ok=True)
    for md in sources:
        nb = jupytext.read(md, fmt="md:myst")
        try:
            _, executed = cache.merge_match_into_notebook(nb)
        except KeyError:
            print(f"colab_notebooks: {md.name} has no executed version in {args.cache} (was it built with "
                  "these sources?)", file=sys.stderr)
            return 2
        try:
            executed = inline_notebook_literalincludes(executed, md.parent)
        except (LookupError, SyntaxError) as err:
            print(f"colab_notebooks: {md.name}: {err}", file=sys.stderr)
            return 2
        out = colab_notebook(executed, args.repo, args.ref)
        nbformat.validate(out)
        nbformat.write(out, args.out / md.with_suffix(".ipynb").name)
    print(f"colab_notebooks: {len(sources)} chapters -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Formula to code in one step: every `{literalinclude}` with `:pyobject:` in a chapter shows an existing
function whose docstring names the equation it sits under; the Colab notebooks show the same code inline."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import runpy
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

# A fenced directive (``` or ~~~ or :::) with its argument and `:option: value` lines.
INCLUDE = re.compile(r"^(?P<fence>`{3,}|~{3,}|:{3,})\{literalinclude\}[ \t]+(?P<path>\S+)[ \t]*\n"
                     r"(?P<options>(?:[ \t]*:[\w-]+:.*\n)*)(?P=fence)[ \t]*$", re.M)
# Equation labels: dollarmath `$$ (label)`, a `(label)=` target, a math directive's `:label: label`.
EQUATION_LABEL = re.compile(r"^\$\$[ \t]*\((?P<a>[^)\s]+)\)[ \t]*$|^[ \t]*:label:[ \t]*(?P<b>\S+)[ \t]*$",
                            re.M)
OPTION = re.compile(r"^[ \t]*:([\w-]+):[ \t]*(.*?)[ \t]*$", re.M)
TARGET = re.compile(r"^\((?P<c>[^)\s]+)\)=[ \t]*$", re.M)
# How a docstring names a label: eq-<words>, plain or inside an {eq} role.
DOC_LABEL = re.compile(r"\beq-[a-z0-9]+(?:-[a-z0-9]+)*\b")


def book_labels(texts: list[str]) -> set[str]:
    """Every equation label and `(label)=` target defined in the chapters' text."""
    labels = set()
    for text in texts:
        labels |= {m["a"] or m["b"] for m in EQUATION_LABEL.finditer(text)}
        labels |= {m["c"] for m in TARGET.finditer(text)}
    return labels


def find_object(path: Path, name: str) -> ast.AST | None:
    """The function or class `name` (`Class.method` for a method) defined in `path`, or None."""
    body, node = ast.parse(path.read_text(), filename=str(path)).body, None
    for part in name.split("."):
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            return None
        body = node.body
    return node


def link_errors(chapter: str, text: str, base: Path, labels: set[str]) -> list[str]:
    """What is wrong with the `:pyobject:` literalincludes of one chapter's text (empty: nothing).

    Each must name an existing file (relative to `base`) and object; the object's docstring must name at least
    one equation label, every label it names must exist in the book, and one of them must be the label of the
    equation the include follows (the nearest one above it in the chapter).
    """
    errors = []
    equations = [(m.start(), m["a"] or m["b"]) for m in EQUATION_LABEL.finditer(text)]
    for m in INCLUDE.finditer(text):
        options = dict(OPTION.findall(m["options"]))
        if "pyobject" not in options:
            continue
        where = f"{chapter}: literalinclude {m['path']} :pyobject: {options['pyobject']}"
        path = base / m["path"]
        if not path.is_file():
            errors.append(f"{where}: no such file")
            continue
        node = find_object(path, options["pyobject"])
        if node is None:
            errors.append(f"{where}: no such function or class in {m['path']}")
            continue
        named = DOC_LABEL.findall(ast.get_docstring(node) or "")
        above = [label for start, label in equations if start < m.start()]
        if not named:
            errors.append(f"{where}: its docstring names no equation label (eq-...)")
        elif unknown := sorted(set(named) - labels):
            errors.append(f"{where}: its docstring names {unknown}, which no chapter defines")
        elif not above:
            errors.append(f"{where}: comes before any labelled equation of the chapter")
        elif above[-1] not in named:
            errors.append(f"{where}: sits under {above[-1]} but its docstring names {sorted(set(named))}")
    return errors


def chapters() -> dict[str, str]:
    return {md.name: md.read_text() for md in sorted(BOOK.glob("*.md"))}


def includes(text: str) -> list[dict[str, str]]:
    return [{"path": m["path"], **dict(OPTION.findall(m["options"]))} for m in INCLUDE.finditer(text)]


def test_every_pyobject_include_resolves_and_names_its_equation():
    texts = chapters()
    labels = book_labels(list(texts.values()))
    errors = [e for name, text in texts.items() for e in link_errors(name, text, BOOK, labels)]
    assert not errors, "\n".join(errors)


def test_the_chapters_with_library_equations_show_their_code():
    texts = chapters()
    shown = {name: {inc.get("pyobject") for inc in includes(text)} for name, text in texts.items()}
    # the functions issue 10 names, under chapter 5's equations, and at least one per chapter 1, 2 and 4
    assert {"soft_bellman_target", "critic_loss", "actor_loss", "sarsa_loss", "action_grad_penalty",
            "refinement_loss"} <= shown["05_csil_end_to_end.md"]
    for name in ("01_soft_rl.md", "02_coherent_rewards.md", "04_continuous_rewards.md"):
        assert shown[name] - {None}, f"{name} shows no library function"
    for name, text in texts.items():
        for inc in includes(text):
            assert inc["path"].startswith("../csil_lite/"), (name, inc)  # resolves from book/ in every build
            assert inc.get("language") == "python", (name, inc)


CHAPTER = """---
kernelspec:
  name: python3
---

$$
y = r + \\gamma V
$$ (eq-target)

```{literalinclude} ../lib.py
:pyobject: target
```

$$
L = (Q - y)^2
$$ (eq-loss)

```{literalinclude} ../lib.py
:pyobject: %s
```
"""

LIB = '''
def target(r, v):
    """y of eq-target."""
    return r + v


def loss(q, y):
    """The regression of eq-loss."""
    return (q - y) ** 2


def unnamed(q, y):
    """No label here."""
    return q - y


def elsewhere(q, y):
    """Names eq-target, the wrong equation for where it is shown."""
    return q - y


def ghost(q, y):
    """Names eq-nowhere."""
    return q - y


class Head:
    def loss(self, q, y):
        """Method form, eq-loss."""
        return (q - y) ** 2
'''


@pytest.mark.parametrize("obj, problem", [
    ("loss", None),
    ("Head.loss", None),
    ("los", "no such function or class"),
    ("Head.value", "no such function or class"),
    ("unnamed", "names no equation label"),
    ("elsewhere", "sits under eq-loss"),
    ("ghost", "which no chapter defines"),
])
def test_the_check_fails_on_a_wrong_name(tmp_path, obj, problem):
    book = tmp_path / "book"
    book.mkdir()
    (tmp_path / "lib.py").write_text(LIB)
    text = CHAPTER % obj
    errors = link_errors("ch.md", text, book, book_labels([text]))
    if problem is None:
        assert errors == []
    else:
        assert len(errors) == 1 and problem in errors[0], errors
    # a path that does not exist is caught before the object is looked up
    moved = link_errors("ch.md", text.replace("../lib.py", "../nope.py"), book, book_labels([text]))
    assert moved and all("no such file" in e for e in moved)


def test_colab_notebooks_show_the_included_code_inline():
    import jupytext

    colab = runpy.run_path(str(ROOT / "scripts" / "colab_notebooks.py"), run_name="colab_notebooks")
    seen = 0
    for md in sorted(BOOK.glob("[0-9][0-9]_*.md")):
        if "{literalinclude}" not in md.read_text():
            continue
        nb = colab["inline_notebook_literalincludes"](jupytext.read(md, fmt="md:myst"), BOOK)
        markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert "{literalinclude}" not in markdown, md.name
        for inc in includes(md.read_text()):
            # the same code the library runs: inspect's source of the imported object, decorators included
            module_name = inc["path"].removeprefix("../").removesuffix(".py").replace("/", ".")
            module = importlib.import_module(module_name)
            obj = module
            for part in inc["pyobject"].split("."):
                obj = getattr(obj, part)
            source = textwrap.dedent(inspect.getsource(inspect.unwrap(obj))).rstrip()
            assert f"```python\n{source}\n```" in markdown, (md.name, inc["pyobject"])
            seen += 1
    assert seen >= 10


def test_colab_inlining_names_a_missing_object(tmp_path):
    colab = runpy.run_path(str(ROOT / "scripts" / "colab_notebooks.py"), run_name="colab_notebooks")
    (tmp_path / "lib.py").write_text(LIB)
    book = tmp_path / "book"
    book.mkdir()
    shown = colab["inline_literalincludes"]("```{literalinclude} ../lib.py\n:pyobject: Head.loss\n"
                                            ":caption: lib.py\n```\n", book)
    assert shown.startswith("*lib.py*\n\n```python\ndef loss(self, q, y):\n")  # a method, dedented
    with pytest.raises(LookupError, match="'los'"):
        colab["inline_literalincludes"]("```{literalinclude} ../lib.py\n:pyobject: los\n```", book)
    with pytest.raises(LookupError, match="nope.py"):
        colab["inline_literalincludes"]("```{literalinclude} ../nope.py\n:pyobject: loss\n```", book)

"""The package's layers read downward: no import circles among `csil_lite`'s modules, and no upward arrows.

The graph is read from the source with `ast`, imports inside functions included (a lazy import is still an
arrow: it only hides a circle from the interpreter). `from csil_lite.x import y` is an arrow to `csil_lite.x`
and, where `csil_lite.x.y` is a module, to it; importing `csil_lite.x.y` also runs the `__init__` of every
package above it, which counts unless the importing module lives inside that package (its parents are always
initialised first, so `from csil_lite.configs import base` inside `configs/` needs only `configs.base`).
A top-level `if __name__ == "__main__":` block is left out: it runs only when the file is a script, as the
module `__main__`, never when the package imports it.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import csil_lite

ROOT = "csil_lite"


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (packages as their `__init__.py`), found without importing."""
    found = {ROOT: Path(csil_lite.__file__)}
    todo = [(ROOT, Path(csil_lite.__file__).parent)]
    while todo:
        name, path = todo.pop()
        for info in pkgutil.iter_modules([str(path)]):
            full = f"{name}.{info.name}"
            if info.ispkg:
                found[full] = path / info.name / "__init__.py"
                todo.append((full, path / info.name))
            else:
                found[full] = path / f"{info.name}.py"
    return found


MODULES = _modules()


def _is_inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` names (relative imports resolved against `module`)."""
    if not node.level:
        return node.module or ""
    base = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def _targets(module: str, named: str, names: list[str]) -> set[str]:
    """The package modules that importing `names` from `named` (or `named` itself, for no names) runs."""
    if not _is_inside(named, ROOT):
        return set()
    out = set()
    parts = named.split(".")
    for i in range(1, len(parts)):  # the packages above: their __init__ runs first
        parent = ".".join(parts[:i])
        if parent in MODULES and not _is_inside(module, parent):
            out.add(parent)
    submodules = {f"{named}.{n}" for n in names if f"{named}.{n}" in MODULES}
    out |= submodules
    # The named module itself, unless only its submodules were taken from a package that holds the importer.
    if named in MODULES and not (submodules and len(submodules) == len(names) and _is_inside(module, named)):
        out.add(named)
    return out - {module}


def _is_main_guard(node: ast.stmt) -> bool:
    """`if __name__ == "__main__":`"""
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports, at module level or inside functions."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        edges: set[str] = set()
        body = ast.parse(path.read_text(), filename=str(path)).body
        for node in (n for stmt in body if not _is_main_guard(stmt) for n in ast.walk(stmt)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    edges |= _targets(module, alias.name, [])
            elif isinstance(node, ast.ImportFrom):
                edges |= _targets(module, _resolve(module, node), [a.name for a in node.names])
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_every_module_imports():
    """Each module imports on its own; one that needs an optional extra which is not installed is skipped, but
    a missing module of this package is an error."""
    skipped = {}
    for module in sorted(MODULES):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name is None or _is_inside(err.name, ROOT):
                raise
            skipped[module] = err.name
    assert len(skipped) < len(MODULES) // 2, f"most modules skipped: {skipped}"


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "csil_lite.configs.base" in graph["csil_lite.configs.csil"]  # from csil_lite.configs import base
    assert "csil_lite.configs" not in graph["csil_lite.configs.csil"]  # ... its own package is initialised first
    assert "csil_lite.configs" in graph["csil_lite.train"]  # from csil_lite.configs import ALGORITHMS, preset
    assert "csil_lite.config" in graph["csil_lite.train"]
    assert "csil_lite.cli" not in graph["csil_lite.data.generate"]  # only its `__main__` block imports it
    assert "csil_lite.data.generate" in graph["csil_lite.base.cli"]  # an import inside a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_circles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_config_is_below_the_named_configurations():
    graph = import_graph()
    assert not {m for m in graph["csil_lite.config"] if _is_inside(m, "csil_lite.configs")}
    assert graph["csil_lite.book"] == set() and "csil_lite.book" not in graph["csil_lite.plotting_uncertainty"]


UPWARD = [
    pytest.param("csil_lite.nets", "csil_lite.agents", id="nets->agents"),
    pytest.param("csil_lite.coherent", "csil_lite.agents", id="coherent->agents"),
    pytest.param("csil_lite.envs", "csil_lite.data", id="envs->data"),
    pytest.param("csil_lite.agents", "csil_lite.loop", id="agents->loop"),
    pytest.param("csil_lite.agents", "csil_lite.pretrain", id="agents->pretrain"),
    pytest.param("csil_lite.agents", "csil_lite.assembly", id="agents->assembly"),
    pytest.param("csil_lite.losses", "csil_lite.nets", id="losses->nets"),
    pytest.param("csil_lite.obs", "csil_lite.data", id="obs->data"),
]


@pytest.mark.parametrize("lower,upper", UPWARD)
def test_no_upward_arrows(lower, upper):
    """A lower layer never imports a higher one (here or through another module of the package)."""
    graph = import_graph()
    reached: dict[str, str] = {}  # module -> the module that first imported it, from inside `lower`
    todo = [m for m in graph if _is_inside(m, lower)]
    for m in todo:
        reached[m] = m
    while todo:
        m = todo.pop()
        for nxt in graph[m]:
            if nxt not in reached:
                reached[nxt] = m
                todo.append(nxt)
    bad = sorted(m for m in reached if _is_inside(m, upper))
    if bad:
        chain, m = [bad[0]], bad[0]
        while reached[m] != m:
            m = reached[m]
            chain.append(m)
        pytest.fail(f"{lower} imports {upper}: " + " -> ".join(reversed(chain)))

"""No import cycles among ``src/llmrelay`` modules.

A cycle held together by imports inside functions still couples the modules (each one
needs the other to work, and start-up order decides whether it does), so every
``import`` / ``from`` statement anywhere in a module counts; only those under
``if TYPE_CHECKING:`` are ignored (they never run). The graph is built with ``ast`` from
the source files, not by importing them, so the check cannot be fooled by import order.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``root`` by dotted name (a package is its
    ``__init__``)."""
    found: dict[str, Path] = {}
    for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements that can run: all of them but the body of ``if TYPE_CHECKING``
    (its ``else`` branch does run)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name a (possibly relative) ``from`` statement imports from."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of ``modules`` (``a.b.c`` may be the
    function ``c`` of module ``a.b``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports. ``import a.b`` and ``from a import b``
    (``b`` a submodule) count as edges to ``a.b`` and to the package ``a`` whose
    ``__init__`` runs first."""
    modules = module_names(root, package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _resolve(name, is_package, node)
                targets = [base] + [
                    f"{base}.{alias.name}" for alias in node.names if alias.name != "*"
                ]
            for target in targets:
                parts = target.split(".")
                for i in range(1, len(parts) + 1):  # parent packages' __init__ run too
                    hit = _known(".".join(parts[:i]), modules)
                    if hit is not None and hit != name:
                        graph[name].add(hit)
    return graph


def _is_ancestor(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted,
    the list sorted. A package importing its own submodule (``__init__`` re-exports)
    and that submodule running the package's ``__init__`` is the normal shape of a
    package, not a cycle, so edges from a module up to its own ancestor packages are
    left out."""
    edges = {m: sorted(t for t in ts if not _is_ancestor(t, m)) for m, ts in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:  # iterative: the graph may be deeper than the recursion limit
        nonlocal counter
        work: list[tuple[str, Iterator[str]]] = [(start, iter(edges[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for name in sorted(edges):
        if name not in index:
            visit(name)
    return sorted(found)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_graph_builder_resolves_every_import_form(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from . import b\n",
            "pkg/b.py": "def f():\n    from pkg.sub.c import thing\n",
            "pkg/sub/__init__.py": "from .c import thing\n",
            "pkg/sub/c.py": "import json\nimport pkg.d\nthing = 1\n",
            "pkg/d.py": "from .sub import c\nfrom ..outside import x\n",
            "pkg/e.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg import a\nelse:\n    from pkg import f\n"
            ),
            "pkg/f.py": "import typing\nif typing.TYPE_CHECKING:\n    import pkg.e\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg", "pkg.b"}
    assert graph["pkg.b"] == {"pkg", "pkg.sub", "pkg.sub.c"}  # inside a function counts
    assert graph["pkg.sub"] == {"pkg", "pkg.sub.c"}
    assert graph["pkg.sub.c"] == {"pkg", "pkg.d"}
    assert graph["pkg.d"] == {"pkg", "pkg.sub", "pkg.sub.c"}
    assert graph["pkg.e"] == {"pkg", "pkg.f"}  # the TYPE_CHECKING branch is ignored, else not
    assert graph["pkg.f"] == set()
    # b -> sub.c -> d -> sub.c: one cycle; the package and its own submodules are not one.
    assert cycles(graph) == [["pkg.d", "pkg.sub", "pkg.sub.c"]]


def test_cycles_finds_each_component_and_nothing_in_a_dag() -> None:
    dag = {"a": {"b", "c"}, "b": {"c"}, "c": set()}
    assert cycles(dag) == []
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c", "a"}, "f": {"f"}}
    assert cycles(graph) == [["a", "b"], ["c", "d", "e"]]


def test_deep_chain_does_not_hit_the_recursion_limit() -> None:
    n = 5000
    graph = {str(i): {str(i + 1)} for i in range(n)} | {str(n): {"0"}}
    assert [len(c) for c in cycles(graph)] == [n + 1]


def test_no_import_cycles_in_llmrelay() -> None:
    found = cycles(import_graph(SRC, "llmrelay"))
    if found:
        lines = "\n".join(" <-> ".join(c) for c in found)
        pytest.fail(f"{len(found)} import cycle(s) among src/llmrelay modules:\n{lines}")

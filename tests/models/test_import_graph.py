"""The import graph inside ``testbed.models`` is acyclic, function-level imports included (issue #19).

A lazy import inside a function hides a cycle from Python's start-up but not from a reader:
this walks every ``import`` statement at any depth with :mod:`ast`, so a cycle cannot hide
behind one. Parent packages that Python initialises implicitly are not edges; an explicit
``from testbed.models import X`` is an edge to ``testbed/models/__init__.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTBED = REPO / "testbed"


def module_name(path: Path, src_root: Path) -> str:
    """``src_root/testbed/models/zoo.py`` -> ``testbed.models.zoo``; a package's ``__init__`` -> the package."""
    parts = list(path.relative_to(src_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    """The longest prefix of dotted ``name`` that is one of ``modules`` (None: outside them)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> modules of the same package it imports, from every import statement at any depth
    (top level, inside functions, classes, ``if`` and ``try`` blocks)."""
    src_root = package_dir.parent
    while (src_root / "__init__.py").is_file():     # up to the folder holding the top-level package
        src_root = src_root.parent
    files = {module_name(p, src_root): p for p in sorted(package_dir.rglob("*.py"))}
    modules = set(files)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".")
                    base = base if is_pkg else base[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                # ``from pkg import sub`` imports the module pkg.sub when there is one, else a name of pkg
                targets = [f"{prefix}.{a.name}" for a in node.names] or [prefix]
            for target in targets:
                hit = _resolve(target, modules)
                if hit is not None and hit != mod:
                    graph[mod].add(hit)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None when it is a DAG."""
    state: dict[str, int] = {}     # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_models_import_graph_is_acyclic_including_function_level_imports():
    graph = import_graph(TESTBED / "models")
    assert "testbed.models.cards" in graph and "testbed.models.robust.build" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in testbed.models: " + " -> ".join(cycle)


def test_the_builders_share_cards_instead_of_importing_each_other():
    graph = import_graph(TESTBED / "models")
    assert "testbed.models.cards" in graph["testbed.models.robust.build"]
    assert "testbed.models.frontend" in graph["testbed.models.zoo"]
    robust = {m for m in graph if m.startswith("testbed.models.robust")}
    for m in robust:
        assert not graph[m] & {"testbed.models.build", "testbed.models.variants", "testbed.models"}, m


def test_the_data_layer_imports_nothing_from_models():
    for path in sorted((TESTBED / "data").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not any(n == "testbed.models" or n.startswith("testbed.models.") for n in names), path


def test_the_checker_finds_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub.b import g\n")
    (pkg / "a.py").write_text("from pkg.sub import b\n\ndef f():\n    return b.g()\n")
    (pkg / "sub" / "b.py").write_text("def g():\n    from .. import a\n    return a\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.a"}
    assert find_cycle(graph) in (["pkg.a", "pkg.sub.b", "pkg.a"], ["pkg.sub.b", "pkg.a", "pkg.sub.b"])
    (pkg / "sub" / "b.py").write_text("def g():\n    return 1\n")
    assert find_cycle(import_graph(pkg)) is None

"""The packages import one way: library, then the registry and searches, then the steps, then benchmarks.

``mlproject`` (the library, the attack engine included) imports none of the others;
``registry`` and ``tuning`` import the library only; ``pipelines`` (the steps and the CLI)
imports those; ``bench`` may import anything. Every import counts, those inside functions too,
and no chain of imports leads from a module back to itself.
"""
from __future__ import annotations

import ast

from tests.conftest import REPO

LAYERS = {"mlproject": 0, "registry": 1, "tuning": 1, "pipelines": 2, "bench": 3}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for package in LAYERS:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            out[name] = ast.parse(path.read_text(), str(path))
    return out


def _imports(tree: ast.Module, known: set[str]) -> set[str]:
    """The project's modules that ``tree`` imports (``from pkg import mod`` names the module ``pkg.mod``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    out = set()
    for name in names:
        while name not in known and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in known:
            out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(tree, set(modules)) - {name} for name, tree in modules.items()}


def _upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports of a package in the same or a higher layer."""
    def layer(m: str) -> int:
        return LAYERS[m.split(".")[0]]

    return sorted((a, b) for a, deps in graph.items() for b in deps
                  if a.split(".")[0] != b.split(".")[0] and layer(b) >= layer(a))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that reach each other through imports (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_every_import_points_down_the_layers():
    assert _upward(_graph()) == []


def test_no_module_imports_itself_through_others():
    assert _cycles(_graph()) == []


def test_the_checks_see_a_cycle_and_an_upward_import():
    """The two checks above fail on the shapes they forbid, function-local imports included."""
    tree = ast.parse("def f():\n    from pipelines import attack_run\n")
    assert _imports(tree, {"pipelines", "pipelines.attack_run"}) == {"pipelines", "pipelines.attack_run"}
    graph = {"tuning.worker": {"pipelines.attack_run"}, "pipelines.attack_run": {"pipelines.attack"},
             "pipelines.attack": {"pipelines.attack_run"}, "registry.store": {"tuning.study"}, "tuning.study": set()}
    assert _upward(graph) == [("registry.store", "tuning.study"), ("tuning.worker", "pipelines.attack_run")]
    assert _cycles(graph) == [["pipelines.attack", "pipelines.attack_run"]]

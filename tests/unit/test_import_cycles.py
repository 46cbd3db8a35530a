"""No import cycles in `coordinator` and `shared`, read from the source with `ast`.

Every import counts, at module level or inside a function: a lazy import hides a cycle from
Python's import machinery, not from the design.
"""
import ast
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).parents[2]
PACKAGES = ("coordinator", "shared")


def modules() -> Dict[str, Path]:
    """Dotted module name -> source file, for every module of the packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: Set[str]) -> Set[str]:
    """The modules of `known` that `name` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    targets: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package (a package is its own)
                package = name.split(".")
                if not is_package:
                    package.pop()
                base = ".".join(package[:len(package) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in known else base)
    resolved = set()
    for target in targets:  # `import a.b.c` of a name in a module: the longest known prefix
        parts = target.split(".")
        while parts and ".".join(parts) not in known:
            parts.pop()
        if parts:
            resolved.add(".".join(parts))
    return resolved - {name}


def graph() -> Dict[str, Set[str]]:
    known = modules()
    return {name: imports_of(name, path, set(known)) for name, path in known.items()}


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [_cycle_in(sorted(c), edges) for c in components]


def _cycle_in(component: List[str], edges: Dict[str, Set[str]]) -> List[str]:
    """A path from the component's first module back to itself, inside the component."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:  # breadth first: the shortest cycle through `start`
        nxt = []
        for v in frontier:
            for w in sorted(edges[v] & members):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return component


def test_the_graph_sees_relative_and_lazy_imports():
    edges = graph()
    assert "coordinator.report.document" in edges["coordinator.run.bench"]  # module level
    assert "coordinator.report.views" in edges["coordinator.cli.app"]  # inside the `report` command
    assert "coordinator.launchers.docker" in edges["coordinator.launchers"]  # from .docker import (a package)
    assert "coordinator.report.document" in edges["coordinator.report.views"]  # from ..report import (a package's __init__)
    assert {"coordinator.report.charts", "coordinator.report.pictures"} <= edges["coordinator.report.views.report_html"]  # from .. import
    assert "shared.environment" in edges["coordinator.run.bench"]  # absolute
    assert "shared.records" in edges["shared.result"]


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)

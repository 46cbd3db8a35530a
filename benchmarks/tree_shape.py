"""The shape of the tree as a newcomer meets it: what each kind of extension adds, the functions and
classes over their size limits, the median module, and import cycles (issue 27's "done when").

    python benchmarks/tree_shape.py [--limits]

Prints its findings, the figure last; with --limits, exits 1 when a limit is passed.
Limits: a function <= 60 lines, a class <= 150, the run orchestration entry point <= 100, the median
non-test module <= 100 lines.
"""
import argparse
import ast
import statistics
import sys
from pathlib import Path
from typing import Iterator, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("coordinator", "shared", "runners")
FUNCTION_LINES, CLASS_LINES, ENTRY_LINES, MEDIAN_LINES = 60, 150, 100, 100
ENTRY = ("coordinator/run/bench.py", "bench")  # the run orchestration entry point

# What a newcomer adds for each kind of extension, and how e2e finds it (no list to edit).
EXTENSIONS = {
    "an engine": ("runners/<id>/ (manifest.yaml, runner.py, its Dockerfile) + its docker-bake.hcl target",
                  "coordinator/engines.py scans runners/*/manifest.yaml"),
    "a model family": ("coordinator/tasks/<family>.py", "coordinator/tasks/__init__.py scans the package"),
    "a launcher": ("coordinator/launchers/<name>.py or a folder <name>/ (as ray/)",
                   "coordinator/launchers/registry.py scans the package and its folders"),
    "a report view": ("coordinator/report/views/<name>.py", "coordinator/report/views/__init__.py scans the package"),
    "a scenario": ("shared/scenarios/<name>.py (it declares what the verdict and the sweep read of it)",
                   "shared/scenarios/__init__.py scans the package"),
}


def modules() -> Iterator[Path]:
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "openppl-src" not in path.parts:
                yield path


def long_definitions() -> Tuple[List[str], List[str]]:
    functions, classes = [], []
    for path in modules():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1 if hasattr(node, "lineno") else 0
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and lines > FUNCTION_LINES:
                functions.append(f"{where} {node.name}() {lines} lines")
            elif isinstance(node, ast.ClassDef) and lines > CLASS_LINES:
                classes.append(f"{where} class {node.name} {lines} lines")
    return functions, classes


def entry_lines() -> int:
    path, name = ENTRY
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node.end_lineno - node.lineno + 1
    return 0


def cycles() -> List[List[str]]:
    """The import cycles of coordinator/ and shared/, as the test that forbids them finds them."""
    sys.path.insert(0, str(ROOT))
    from tests.unit.test_import_cycles import cycles as find, graph

    return find(graph())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limits", action="store_true", help="exit 1 when a limit is passed")
    parser.add_argument("--smoke", action="store_true", help="the same (it reads the tree; it takes a second)")
    args = parser.parse_args()
    print("What a newcomer adds, per kind of extension:")
    for kind, (adds, found_by) in EXTENSIONS.items():
        print(f"  {kind}: {adds}  (found: {found_by})")
    functions, classes = long_definitions()
    print(f"Functions over {FUNCTION_LINES} lines: {len(functions)}", *functions, sep="\n  ")
    print(f"Classes over {CLASS_LINES} lines: {len(classes)}", *classes, sep="\n  ")
    entry = entry_lines()
    print(f"The run entry point ({ENTRY[0]} {ENTRY[1]}()): {entry} lines (limit {ENTRY_LINES})")
    found = cycles()
    print(f"Import cycles: {len(found)}", *(" -> ".join(c) for c in found), sep="\n  ")
    sizes = [len(p.read_text().splitlines()) for p in modules() if p.name != "__init__.py"]
    median = statistics.median(sizes)
    print(f"Median module: {median:.0f} lines over {len(sizes)} modules (limit {MEDIAN_LINES})")
    passed = not functions and not classes and entry <= ENTRY_LINES and not found and median <= MEDIAN_LINES
    return 1 if args.limits and not passed else 0


if __name__ == "__main__":
    sys.exit(main())

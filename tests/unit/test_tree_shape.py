"""The tree keeps the shape a newcomer can read (issue 27): no function over 60 lines, no class
over 150, the run's entry point at most 100, as benchmarks/tree_shape.py measures them."""
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "tree_shape.py"


def load():
    spec = importlib.util.spec_from_file_location("tree_shape", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_function_or_class_is_over_its_limit():
    shape = load()
    functions, classes = shape.long_definitions()
    assert not functions, "split these functions:\n" + "\n".join(functions)
    assert not classes, "split these classes:\n" + "\n".join(classes)
    assert shape.entry_lines() <= shape.ENTRY_LINES

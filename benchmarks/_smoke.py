"""`--smoke`, which every benchmark takes: the shortest run through the script's whole path (on the
tiny test model where the script runs `e2e bench`), so that a benchmark that stops working fails
the tests (tests/integration/test_benchmarks.py) instead of rotting unseen. Its figures mean nothing."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = "tests.fixtures.tiny:tiny_cnn"  # importable with ROOT on PYTHONPATH (`env`)
HELP = "a short run through the whole script (the tests run it so): its figures mean nothing"


def env() -> dict:
    """This environment, with the repository importable: `e2e bench --model` TINY finds it."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}

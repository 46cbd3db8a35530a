"""Every runner module loads in the coordinator's environment, with no engine installed.

Runners are found by glob, so a new `runners/<id>/runner.py` is covered without an edit here;
each is loaded by its path, as shared/entry.py loads it.
"""
import dataclasses
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from shared.runner import NoOptions, Runner, find_runner_class
from shared.spec import PRECISIONS

RUNNERS = sorted((Path(__file__).parents[2] / "runners").glob("*/runner.py"))
# Engine packages, none of them in the coordinator's environment; runners import them lazily.
ENGINE_PACKAGES = ("onnxruntime", "openvino", "nncf", "tvm", "tensorrt", "cuda", "pyppl", "polygraphy", "tritonclient",
                   "pytriton", "MNN", "ncnn")


def load_runner(path: Path) -> ModuleType:
    """The runner module at `path`, loaded by its path as shared/entry.py does."""
    spec = importlib.util.spec_from_file_location(f"e2e_runner_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_glob_finds_the_runners():
    assert {p.parent.name for p in RUNNERS} >= {"torch", "ort", "openvino", "tvm", "trt", "openppl", "triton"}


@pytest.mark.parametrize("path", RUNNERS, ids=lambda p: p.parent.name)
def test_runner_module_loads_without_its_engine(path, monkeypatch):
    for name in ENGINE_PACKAGES:  # None in sys.modules: `import tvm` raises ImportError, installed or not
        monkeypatch.setitem(sys.modules, name, None)
    cls = find_runner_class(load_runner(path))
    assert cls is not None, f"{path} must define exactly one Runner subclass"
    assert issubclass(cls, Runner)
    options = cls.Options()  # every option has a default
    assert cls.Options is NoOptions or dataclasses.is_dataclass(options)


@pytest.mark.parametrize("path", RUNNERS, ids=lambda p: p.parent.name)
def test_runner_reports_plain_precisions(path):
    """Parity looks tolerances up by the precision a runner reports: one of PRECISIONS, with any
    detail ("conv and gemm only") in the runner's settings."""
    reported = re.findall(r'self\.precision = "([^"]*)"', path.read_text())
    assert set(reported) <= set(PRECISIONS)

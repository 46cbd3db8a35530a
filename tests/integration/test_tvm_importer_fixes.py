"""The TVM runner's fixes to apache-tvm 0.27's ONNX import (runners/tvm/importer_fixes.py and the
whole-Slice rewrite in shared/specialise.py) and to its tuned build (tuning.py), each on a tiny graph of
the pattern torchvision's Faster R-CNN has: it fails with TVM as it is and imports, builds and
matches ONNX's reference with the fix. The graphs run with real TVM in the tvm engine's own environment (tests/fixtures/
tvm_importer_cases.py), once unfixed and once fixed; the environment is made when the tests' cache lacks it."""
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tests.unit.test_runner_modules import load_runner

pytestmark = [pytest.mark.integration]

CASES = Path(__file__).parents[1] / "fixtures" / "tvm_importer_cases.py"
FIXES = Path(__file__).parents[2] / "runners" / "tvm" / "importer_fixes.py"
INT32_MAX = 2 ** 31 - 1


@pytest.fixture(scope="module")
def cases(tvm_python):
    """case -> {"unfixed": report, "fixed": report}; both runs at once (each ~10 s, mostly TVM's import)."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))  # the runner's modules import `shared`
    runs = {mode: subprocess.Popen([tvm_python, str(CASES), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=env) for mode in ("unfixed", "fixed")}
    reports = {}
    for mode, proc in runs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        reports[mode] = json.loads(out.strip().splitlines()[-1])
    return {case: {mode: reports[mode][case] for mode in reports} for case in reports["fixed"]}


def test_a_slice_over_the_whole_axis_is_dropped_before_import(cases):
    # min(2147483647, n) is not n to TVM's analyzer: the Add after it has no shape and no kernel
    case = cases["whole_slice"]
    assert "CodeGenVM cannot emit" in case["unfixed"]["error"] and "R.add" in case["unfixed"]["error"]
    assert case["fixed"] == {"error": None, "match": True, "rows": None}


def test_an_if_output_of_unknown_dims_gets_symbolic_ones(cases):
    case = cases["if_output"]
    assert "CodeGenVM cannot emit" in case["unfixed"]["error"] and "R.add" in case["unfixed"]["error"]
    assert case["fixed"] == {"error": None, "match": True, "rows": None}


def test_arithmetic_on_a_symbolic_shape_stays_a_shape(cases):
    case = cases["shape_arithmetic"]
    assert "cannot handle ShapeExpr inputs" in case["unfixed"]["error"]
    assert case["fixed"] == {"error": None, "match": True, "rows": None}


def test_with_weights_as_inputs_for_tuning_shapes_and_indices_stay_constants(cases):
    # imported with every initializer a parameter, the shape's constants are no longer constants
    case = cases["shape_arithmetic_weights_as_inputs"]
    assert "CodeGenVM cannot emit" in case["unfixed"]["error"] and "R.broadcast_to" in case["unfixed"]["error"]
    assert case["fixed"] == {"error": None, "match": True, "rows": None}


@pytest.mark.parametrize("name, rows", [("nms", 2 * 1000), ("nms_fixed_count", 2 * 7)])
def test_nms_output_rows_are_bounded_by_the_box_count(cases, name, rows):
    # 2 classes x INT32_MAX rows: 103 GB, never allocated by the cases script
    case = cases[name]
    assert case["unfixed"]["rows"] == 2 * INT32_MAX and case["unfixed"]["error"].startswith("not run")
    assert case["fixed"] == {"error": None, "match": True, "rows": rows}


def test_a_tuned_build_passes_over_opaque_kernels(cases):
    case = cases["scatter_tuned"]
    assert "There should be a compute block" in case["unfixed"]["error"]
    assert case["fixed"] == {"error": None, "match": True, "rows": None}


def test_fixes_apply_only_to_the_pinned_tvm(monkeypatch):
    fixes = load_runner(FIXES)
    pins = (Path(__file__).parents[2] / "runners" / "tvm" / "requirements.txt").read_text()
    assert "apache-tvm=={}\n".format(fixes.PINNED) in pins  # the gate follows the pin
    monkeypatch.setitem(sys.modules, "tvm", types.SimpleNamespace(__version__="0.28.0"))
    assert fixes.apply(types.SimpleNamespace()) == []  # the frontend is not even looked at

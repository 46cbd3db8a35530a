"""The OpenPPL runner in its real image: ppl.nn v0.9.2 compiled from source.

The tests do not build the image (about 50 minutes on 2 cores, more than a CI run has): they use
e2e-openppl when `e2e images build openppl` has made it from this checkout's runner, and skip with
the launcher's own reason otherwise.
"""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.engines import discover
from coordinator.launchers import DockerLauncher
from shared import RunSpec, load_samples, save_samples

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SOURCES = Path(__file__).parents[2] / "runners" / "openppl" / "sources.sha256"
# The ppl.nn commit the image must report: the one of the ppl.nn archive that sources.sha256 pins.
PPLNN_COMMIT = re.search(r"ppl\.nn/archive/([0-9a-f]{40})\.tar\.gz", SOURCES.read_text()).group(1)


@pytest.fixture(scope="module")
def openppl_image(docker_client):
    reason = DockerLauncher().unavailable(discover()["openppl"], "cpu")
    if reason:
        pytest.skip(f"{reason} (the tests do not build it: ~50 minutes on 2 cores)")


def test_openppl_runs_a_cnn_and_matches_pytorch(openppl_image, tmp_path, cache):
    out = tmp_path / "bench"
    result = CliRunner().invoke(app, [
        "bench", "--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "openppl", "--weights", "random",
        "--device", "cpu", "--warmup", "1", "--iterations", "5", "--launcher", "docker", "--out", str(out),
        "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    row = next(r for r in json.loads((out / "report.json").read_text())["results"] if r["engine"] == "openppl")
    assert row["status"] == "ok", row["reason"]
    assert row["launcher"] == "docker" and row["environment"]["in_container"]
    assert row["engine_version"] == "0.9.2" and row["settings"]["commit"] == PPLNN_COMMIT
    assert row["settings"]["engine"] == "x86" and row["precision"] == "fp32"
    assert row["parity"]["passed"], row["parity"]
    assert row["latency_ms"]["count"] >= 5


def _run_two_ops(tmp_path, second_op, opset, x):
    """Relu then `second_op`, run by the runner in the image on `x`."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="/head/Relu"),
         helper.make_node(second_op, ["r"], ["y"], name=f"/model/{second_op}")], "two_ops",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x.shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 6 if opset == 11 else 8
    return _run_model(tmp_path, model, x)


def _run_model(tmp_path, model, x):
    """`model` (input x, output y), run by the runner in the image on `x`."""
    import onnx

    shared = tmp_path / "shared"  # mounted read-only; readable by the image's user (tmp_path is 0700)
    shared.mkdir(mode=0o755)
    onnx.save(model, str(shared / "model.onnx"))
    save_samples(str(shared / "inputs.npz"), [{"x": x}])
    for path in shared.iterdir():
        path.chmod(0o644)
    spec = RunSpec(engine="openppl", model_path=str(shared / "model.onnx"), inputs_path=str(shared / "inputs.npz"),
                   cache_dir=str(tmp_path / "cache"), warmup=0, iterations=1, save_outputs=True)
    return DockerLauncher().run(discover()["openppl"], spec, tmp_path / "io", timeout=300)


@pytest.mark.parametrize("second_op, opset, expected", [
    # ppl.nn v0.9.2's x86 engine has no Neg at all (nor Reciprocal, which the runner rewrites)
    ("Neg", 11, ("compile", "Neg", "/model/Neg", "the x86 engine has no Neg.")),
    # its ONNX parser takes Relu for opsets 6-16 only
    ("Identity", 17, ("convert", "Relu", "/head/Relu", "ppl.nn's ONNX parser has no Relu at opset 17.")),
])
def test_openppl_names_the_operator_it_lacks(openppl_image, tmp_path, second_op, opset, expected):
    """The row says what stopped ppl.nn: the stage, the operator and the node, read from its own log."""
    result = _run_two_ops(tmp_path, second_op, opset, np.ones((1, 3, 4, 4), np.float32))
    stage, operator, node, words = expected
    assert (result.status, result.stage) == ("unsupported", stage), result.reason
    assert (result.error.operator, result.error.node) == (operator, node)
    assert words in result.reason


def test_openppl_runs_a_reciprocal_as_a_division(openppl_image, tmp_path):
    """The x86 engine has no Reciprocal: the runner gives it Div(1, x), which must give 1/x exactly."""
    x = np.array([[0.1, 3.0, 7.0, 1e-30], [2.0, 0.5, 1e30, 0.3]], np.float32).reshape(1, 2, 2, 2)
    result = _run_two_ops(tmp_path, "Reciprocal", 11, x)
    assert result.status == "ok", result.reason
    assert result.settings["rewrites"] == {"Reciprocal->Div": 1}
    y = load_samples(str(tmp_path / "io" / result.outputs_file))[0]["y"]
    assert np.array_equal(y, np.float32(1) / x)


def test_openppl_pads_with_an_empty_constant_value(openppl_image, tmp_path):
    """torch's export writes Pad(x, pads, ""); ppl.nn v0.9.2 skips an x86 kernel with an empty input and
    leaves its output unwritten (zeros here, the padded image in Faster R-CNN), saying nothing. The
    runner leaves the empty input out: the image padded with zeros, to pads computed at run time."""
    from onnx import TensorProto, helper

    ints = lambda name, values: helper.make_tensor(name, TensorProto.INT64, [len(values)], values)  # noqa: E731
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="/transform/Relu"), helper.make_node("Shape", ["r"], ["shape"]),
         helper.make_node("Slice", ["shape", "one", "three", "zero"], ["hw"]),
         helper.make_node("Sub", ["target", "hw"], ["grow"]),
         helper.make_node("Concat", ["none", "grow"], ["pads"], axis=0),
         helper.make_node("Pad", ["r", "pads", ""], ["y"], name="/transform/Pad", mode="constant")], "pad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 8, 8])],
        [ints("one", [1]), ints("three", [3]), ints("zero", [0]), ints("target", [8, 8]), ints("none", [0, 0, 0, 0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    x = np.arange(1, 106, dtype=np.float32).reshape(3, 5, 7)
    result = _run_model(tmp_path, model, x)
    assert result.status == "ok", result.reason
    assert result.settings["rewrites"] == {"Pad(empty constant_value)->omitted": 1}
    y = load_samples(str(tmp_path / "io" / result.outputs_file))[0]["y"]
    assert np.array_equal(y, np.pad(x, ((0, 0), (0, 3), (0, 1))))

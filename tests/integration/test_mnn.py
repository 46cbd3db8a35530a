"""MNN for real, in its own virtualenv: through `e2e bench` on a classifier and on the whole Faster
R-CNN graph (which MNN gets right only shape-specialised), and an operator its converter refuses."""
import os

import pytest
from onnx import TensorProto, helper, save

from coordinator.engines import discover
from coordinator.launchers import VenvLauncher
from shared import RunSpec, atomic, save_samples
from tests.fixtures.onnx_models import matmul_relu_samples
from tests.integration.test_bench import bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_mnn_runs_a_classifier_converts_once_and_reads_back_its_precision(tmp_path, cache):
    args = ("--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "mnn", "--precision", "fp32,fp16")
    _, _, rows, report = bench(tmp_path / "first", cache, *args)
    row = rows[("mnn", "fp32")]
    assert row["status"] == "ok", row["reason"]
    assert row["precision"] == "fp32" and row["parity"]["passed"], row["parity"]
    settings = row["settings"]
    assert settings["conversion"] in ("converted", "cached") and settings["precision_mode"] == "high"
    assert settings["num_thread"] == report["setup"]["config"]["execution"]["threads"] and settings["specialised"]["nodes_after"] > 0
    half = rows[("mnn", "fp16")]
    assert half["status"] == "ok" and half["parity"]["passed"], half["reason"]
    # fp16 kernels only with fp16 arithmetic (not on x86): the row says what ran
    assert half["precision"] == ("fp32" if half["precision_detail"]["outputs_identical_to_high"] else "fp16")

    os.remove(settings["converted_model"])  # made again, then reused
    one = ("--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "mnn")
    _, _, again, _ = bench(tmp_path / "second", cache, *one)
    assert again[("mnn", "fp32")]["settings"]["conversion"] == "converted", again[("mnn", "fp32")]["reason"]
    _, _, third, _ = bench(tmp_path / "third", cache, *one)
    assert third[("mnn", "fp32")]["settings"]["conversion"] == "cached"
    assert third[("mnn", "fp32")]["settings"]["converted_model"] == settings["converted_model"]


def test_a_truncated_converted_model_is_converted_again_with_one_line(tmp_path, cache):
    """The converted model is one sealed cache entry (shared/atomic.py), a folder of model.mnn and
    convert.log: a file of it cut short is found on the next run, which says so in one line and converts
    again."""
    one = ("--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "mnn")
    _, _, rows, _ = bench(tmp_path / "first", cache, *one)  # converted here or before: in the cache now
    path = rows[("mnn", "fp32")]["settings"]["converted_model"]
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)

    _, out, again, _ = bench(tmp_path / "second", cache, *one)
    row = again[("mnn", "fp32")]
    assert row["status"] == "ok" and row["parity"]["passed"], row["reason"]
    said = "damaged: model.mnn has {} bytes, {} when it was written".format(size // 2, size)
    entry = os.path.dirname(path)
    assert row["settings"]["conversion"] == "converted" and row["settings"]["converted_model"] == path
    assert row["settings"]["cache_remade"] == "{}: {}".format(os.path.basename(entry), said), row["settings"]
    log = (out / "logs" / "mnn-fp32" / "runner.log").read_text()
    assert [line for line in log.splitlines() if "making it again" in line] == [
        "The cached mnn in {} is {}: making it again".format(entry, said)], log
    assert os.path.getsize(path) == size and atomic.problem(entry) is None


def test_mnn_runs_faster_rcnn_specialised_to_its_input_shape(tmp_path, cache):
    _, _, rows, _ = bench(tmp_path, cache, "--model", "tests.fixtures.tiny:small_faster_rcnn", "--engines", "mnn",
                          "--iterations", "1", "--warmup", "0")
    row = rows[("mnn", "fp32")]
    assert row["status"] == "ok", row["reason"]
    assert row["settings"]["specialised"]["folded"] > 0
    parity = row["parity"]
    assert parity["method"] == "detection" and parity["passed"], parity
    assert parity["detection"]["reference_boxes"] > 0


def test_an_op_mnns_converter_lacks_is_unsupported_at_convert(tmp_path, cache):
    engine = discover()["mnn"]
    launcher = VenvLauncher(cache)
    launcher.prepare(engine)
    graph = helper.make_graph([helper.make_node("Hardmax", ["x"], ["y"])], "hardmax",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    save_samples(str(tmp_path / "inputs.npz"), matmul_relu_samples())
    spec = RunSpec(engine="mnn", model_path=str(tmp_path / "m.onnx"), inputs_path=str(tmp_path / "inputs.npz"),
                   cache_dir=str(tmp_path / "cache"), iterations=1)

    result = launcher.run(engine, spec, tmp_path / "io", timeout=600)

    assert result.status == "unsupported" and result.stage == "convert", result.reason
    assert result.error.operator == "Hardmax" and "These Op Not Support: ONNX::Hardmax" in result.error.message

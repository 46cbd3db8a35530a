"""ncnn for real, in its own virtualenv (pnnx converting): through `e2e bench` on a classifier, on
the whole Faster R-CNN graph (which pnnx cannot translate whole), and on an op it leaves as is."""
import os

import pytest
from onnx import TensorProto, helper, save

from coordinator.engines import discover
from coordinator.launchers import VenvLauncher
from shared import RunSpec, atomic, save_samples
from tests.fixtures.onnx_models import matmul_relu_samples
from tests.integration.test_bench import bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_ncnn_runs_a_classifier_converts_once_and_reads_back_its_precision(tmp_path, cache):
    args = ("--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "ncnn", "--precision", "fp32,fp16")
    _, _, rows, report = bench(tmp_path / "first", cache, *args)
    row = rows[("ncnn", "fp32")]
    assert row["status"] == "ok", row["reason"]
    assert row["precision"] == "fp32" and row["parity"]["passed"], row["parity"]
    settings = row["settings"]
    assert settings["conversion"] in ("converted", "cached") and settings["pnnx_inputshape"] == "[1,3,224,224]f32"
    assert settings["num_threads"] == report["setup"]["config"]["execution"]["threads"] and not settings["use_fp16_storage"]
    half = rows[("ncnn", "fp16")]
    assert half["status"] == "ok" and half["parity"]["passed"], half["reason"]
    assert half["precision"] == ("fp32" if half["precision_detail"]["outputs_identical_to_fp32"] else "fp16")

    os.remove(settings["converted_model"])  # made again, then reused
    one = ("--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "ncnn")
    _, _, again, _ = bench(tmp_path / "second", cache, *one)
    assert again[("ncnn", "fp32")]["settings"]["conversion"] == "converted", again[("ncnn", "fp32")]["reason"]
    _, _, third, _ = bench(tmp_path / "third", cache, *one)
    assert third[("ncnn", "fp32")]["settings"]["conversion"] == "cached"
    assert third[("ncnn", "fp32")]["settings"]["converted_model"] == settings["converted_model"]


def test_a_truncated_converted_model_is_converted_again_with_one_line(tmp_path, cache):
    """The converted model is one sealed cache entry (shared/atomic.py), a folder of model.param,
    model.bin and pnnx.log: a file of it cut short is found on the next run, which says so in one line
    and converts again."""
    one = ("--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "ncnn")
    _, _, rows, _ = bench(tmp_path / "first", cache, *one)  # converted here or before: in the cache now
    path = rows[("ncnn", "fp32")]["settings"]["converted_model"]
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)

    _, out, again, _ = bench(tmp_path / "second", cache, *one)
    row = again[("ncnn", "fp32")]
    assert row["status"] == "ok" and row["parity"]["passed"], row["reason"]
    said = "damaged: model.param has {} bytes, {} when it was written".format(size // 2, size)
    entry = os.path.dirname(path)
    assert row["settings"]["conversion"] == "converted" and row["settings"]["converted_model"] == path
    assert row["settings"]["cache_remade"] == "{}: {}".format(os.path.basename(entry), said), row["settings"]
    log = (out / "logs" / "ncnn-fp32" / "runner.log").read_text()
    assert [line for line in log.splitlines() if "making it again" in line] == [
        "The cached ncnn in {} is {}: making it again".format(entry, said)], log
    assert os.path.getsize(path) == size and atomic.problem(entry) is None


def test_faster_rcnn_is_unsupported_at_the_first_layer_pnnx_left(tmp_path, cache):
    _, _, rows, _ = bench(tmp_path, cache, "--model", "tests.fixtures.tiny:small_faster_rcnn", "--engines", "torch,ncnn",
                          "--iterations", "1", "--warmup", "0")  # torch: a row measured, so the bench exits 0
    row = rows[("ncnn", "fp32")]
    assert row["status"] == "unsupported" and row["stage"] == "compile", row["reason"]
    assert row["error"]["operator"] == "torch.unbind" and "NonMaxSuppression" in row["error"]["message"]


def test_an_op_pnnx_does_not_translate_is_unsupported(tmp_path, cache):
    engine = discover()["ncnn"]
    launcher = VenvLauncher(cache)
    launcher.prepare(engine)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("NonZero", ["r"], ["y"])],
                              "nonzero", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [2, None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # as exports are: pnnx's onnxruntime crashes on onnx 1.23's default IR version
    save(model, str(tmp_path / "m.onnx"))
    save_samples(str(tmp_path / "inputs.npz"), matmul_relu_samples())
    spec = RunSpec(engine="ncnn", model_path=str(tmp_path / "m.onnx"), inputs_path=str(tmp_path / "inputs.npz"),
                   cache_dir=str(tmp_path / "cache"), iterations=1)

    result = launcher.run(engine, spec, tmp_path / "io", timeout=600)

    assert result.status == "unsupported" and result.stage == "compile", result.reason
    assert result.error.operator == "NonZero"

"""ncnn for real, in its own virtualenv (pnnx converting): through `e2e bench` on a classifier, on
the whole Faster R-CNN graph (which pnnx cannot translate whole), and on an op it leaves as is."""
import os

import pytest
from onnx import TensorProto, helper, save

from coordinator.engines import discover
from coordinator.launchers import VenvLauncher
from shared import RunSpec, save_samples
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
    assert settings["num_threads"] == report["setup"]["config"]["threads"] and not settings["use_fp16_storage"]
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

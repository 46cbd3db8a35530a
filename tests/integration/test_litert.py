"""LiteRT for real, in its own virtualenv: a classifier converted by onnx2tf and run by LiteRT's
interpreter through `e2e bench` (then from the cache), and an op onnx2tf has no converter for."""
import numpy as np
import pytest
from onnx import TensorProto, helper, save

from coordinator.engines import discover
from coordinator.launchers import VenvLauncher
from shared import RunSpec, save_samples
from tests.integration.test_bench import bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_litert_runs_a_classifier_converted_once(tmp_path, cache):
    one = ("--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "litert")
    _, _, rows, report = bench(tmp_path / "first", cache, *one)
    row = rows[("litert", "fp32")]
    assert row["status"] == "ok", row["reason"]
    assert row["precision"] == "fp32" and row["parity"]["passed"], row["parity"]
    settings = row["settings"]
    assert settings["num_threads"] == report["setup"]["config"]["execution"]["threads"]
    with open(settings["converter_log"]) as f:
        assert "Float32 tflite output complete!" in f.read()

    _, _, again, _ = bench(tmp_path / "second", cache, *one)
    assert again[("litert", "fp32")]["settings"]["conversion"] == "cached"
    assert again[("litert", "fp32")]["settings"]["converted_model"] == settings["converted_model"]


def test_an_op_onnx2tf_lacks_is_unsupported_at_convert(tmp_path, cache):
    engine = discover()["litert"]
    launcher = VenvLauncher(cache)
    launcher.prepare(engine)
    graph = helper.make_graph([helper.make_node("CastLike", ["x", "t"], ["y"])], "castlike",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
                               helper.make_tensor_value_info("t", TensorProto.INT32, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [2, 4])])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    save_samples(str(tmp_path / "inputs.npz"), [{"x": np.ones((2, 4), np.float32), "t": np.zeros(1, np.int32)}])
    spec = RunSpec(engine="litert", model_path=str(tmp_path / "m.onnx"), inputs_path=str(tmp_path / "inputs.npz"),
                   cache_dir=str(tmp_path / "cache"), iterations=1)

    result = launcher.run(engine, spec, tmp_path / "io", timeout=600)

    assert result.status == "unsupported" and result.stage == "convert", result.reason
    assert result.error.operator == "CastLike" and "CastLike OP is not yet implemented" in result.error.message

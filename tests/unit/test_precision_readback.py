"""Each runner reads back the precision its engine really ran at, with the per-op mix."""
import importlib.util
import json
from pathlib import Path

import onnx
from onnx import TensorProto, helper

ROOT = Path(__file__).parents[2]


def runner_module(engine, name="runner"):
    spec = importlib.util.spec_from_file_location(f"readback_{engine}_{name}", ROOT / "runners" / engine / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def optimised_graph(path, weight_type):
    """What ORT's optimised graph of an fp16 model looks like on a CPU: the weights cast back
    to fp32 (InsertedPrecisionFreeCast), or left at fp16 where a kernel takes them."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["w16"], ["w"], name="InsertedPrecisionFreeCast_w", to=TensorProto.FLOAT),
         helper.make_node("Conv", ["x", "w" if weight_type == TensorProto.FLOAT else "w16"], ["y"], name="conv")],
        "g", [helper.make_tensor_value_info("x", weight_type, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", weight_type, [1, 1, 4, 4])],
        [helper.make_tensor("w16", TensorProto.FLOAT16, [1, 1, 1, 1], [1.0])],
        value_info=[helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 1, 1, 1])])
    onnx.save(helper.make_model(graph), str(path))
    return str(path)


def test_ort_reads_an_fp16_model_run_at_fp32_as_fp32(tmp_path):
    from shared.ort import read_back

    ran, detail = read_back(optimised_graph(tmp_path / "a.onnx", TensorProto.FLOAT), "fp16")
    assert ran == "fp32" and detail["heavy_ops"] == {"fp32": 1} and detail["casts_inserted_by_ort"] == 1
    ran, detail = read_back(optimised_graph(tmp_path / "b.onnx", TensorProto.FLOAT16), "fp16")
    assert ran == "fp16" and detail["heavy_ops"] == {"fp16": 1}


class FakeTrt:
    class LayerInformationFormat:
        JSON = "json"


class FakeEngine:
    def __init__(self, layers):
        self.layers = layers

    def create_engine_inspector(self):
        engine = self

        class Inspector:
            def get_engine_information(self, fmt):
                return json.dumps({"Layers": engine.layers})

        return Inspector()


def test_tensorrt_reads_the_layer_formats_from_its_inspector():
    layer_precisions = runner_module("trt", "build").layer_precisions
    fp32 = {"Name": "conv", "Outputs": [{"Name": "y", "Format/Datatype": "Row major linear FP32"}]}
    fp16 = {"Name": "conv2", "Outputs": [{"Name": "z", "Format/Datatype": "Channel major FP16 format where..."}]}
    assert layer_precisions(FakeTrt, FakeEngine([fp32, fp16]), "fp16") == (
        "fp16", {"source": "TensorRT engine inspector", "layers": {"fp32": 1, "fp16": 1}})
    assert layer_precisions(FakeTrt, FakeEngine([fp32]), "fp16")[0] == "fp32"  # TensorRT kept fp32 everywhere
    unknown = layer_precisions(FakeTrt, FakeEngine(["conv"]), "fp16")  # an engine built without layer detail
    assert unknown[0] == "fp16" and "no per-layer formats" in unknown[1]["note"]

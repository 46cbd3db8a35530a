"""The Triton runner's model repository: config.pbtxt generated from an ONNX file's inputs and
outputs, checked by parsing it with Triton's own model_config.proto (from tritonclient) where
that is installed, and by its text otherwise."""
from pathlib import Path

import pytest

from tests.unit.test_runner_modules import load_runner

REPOSITORY = Path(__file__).parents[2] / "runners" / "triton" / "repository.py"


@pytest.fixture(scope="module")
def repository():
    return load_runner(REPOSITORY)


@pytest.fixture
def detector(tmp_path):
    """A graph shaped like a torchvision detector's export: a CHW image with dynamic H and W,
    outputs with a dynamic box count, int64 labels, and an output of unknown rank."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["boxes"]), helper.make_node("Identity", ["images"], ["labels"])],
        "det",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [3, "height", "width"]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["n", 4]),
         helper.make_tensor_value_info("labels", TensorProto.INT64, ["n"])],
        [helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])],  # an initializer listed as input too
    )
    path = tmp_path / "det.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_inputs_and_outputs_come_from_the_onnx_file(repository, detector):
    inputs, outputs = repository.onnx_io(str(detector))
    assert inputs == [repository.Tensor("images", 1, [3, -1, -1])]  # the initializer is not an input
    assert outputs == [repository.Tensor("boxes", 1, [-1, 4]), repository.Tensor("labels", 7, [-1])]


def test_python_backend_config(repository, detector):
    inputs, outputs = repository.onnx_io(str(detector))
    text = repository.config_pbtxt("python", inputs, outputs, "cpu", 2, {"onnx_path": "/m/a \"b\".onnx"})
    assert 'backend: "python"' in text and "max_batch_size: 0" in text
    assert '{ name: "images" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] }' in text
    assert '{ name: "labels" data_type: TYPE_INT64 dims: [ -1 ] }' in text
    assert "instance_group [ { count: 1 kind: KIND_CPU } ]" in text
    assert 'parameters { key: "onnx_path" value: { string_value: "/m/a \\"b\\".onnx" } }' in text
    assert "intra_op_thread_count" not in text  # the python model takes its threads from its own parameter
    parsed = _parse(text)
    if parsed is not None:
        assert parsed.backend == "python" and parsed.max_batch_size == 0
        assert [list(t.dims) for t in parsed.input] == [[3, -1, -1]]
        assert parsed.parameters["onnx_path"].string_value == '/m/a "b".onnx'


def test_onnxruntime_backend_on_a_gpu_with_tensorrt(repository):
    x = repository.Tensor("x", 10, [])  # an fp16 scalar
    text = repository.config_pbtxt("onnxruntime", [x], [repository.Tensor("y", 1, [2])], "cuda:1", 4,
                                   accelerator={"precision_mode": "FP32"})
    assert 'backend: "onnxruntime"' in text and 'default_model_filename: "model.onnx"' in text
    assert '{ name: "x" data_type: TYPE_FP16 dims: [ 1 ] reshape: { shape: [ ] } }' in text
    assert "kind: KIND_GPU gpus: [ 1 ]" in text
    assert 'key: "intra_op_thread_count" value: { string_value: "4" }' in text
    assert 'key: "inter_op_thread_count" value: { string_value: "1" }' in text
    assert 'name: "tensorrt" parameters { key: "precision_mode" value: "FP32" }' in text
    parsed = _parse(text)
    if parsed is not None:
        accelerator = parsed.optimization.execution_accelerators.gpu_execution_accelerator[0]
        assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP32"
        assert list(parsed.instance_group[0].gpus) == [1] and list(parsed.input[0].reshape.shape) == []


def test_tensorrt_backend_is_a_plan(repository):
    text = repository.config_pbtxt("tensorrt", [repository.Tensor("x", 1, [1, 3])], [repository.Tensor("y", 1, [1])],
                                   "cuda:0", 2)
    assert 'platform: "tensorrt_plan"' in text and 'default_model_filename: "model.plan"' in text
    assert "backend:" not in text and "thread_count" not in text


def test_what_triton_cannot_describe_is_an_error_naming_the_tensor(repository):
    with pytest.raises(ValueError, match="'c'.*element type 14"):  # complex64
        repository.config_pbtxt("python", [repository.Tensor("c", 14, [2])], [], "cpu", 1)
    with pytest.raises(ValueError, match="'y' has no shape"):
        repository.config_pbtxt("python", [], [repository.Tensor("y", 1, None)], "cpu", 1)
    with pytest.raises(ValueError, match="backend must be one of"):
        repository.config_pbtxt("openvino", [], [], "cpu", 1)
    with pytest.raises(ValueError, match="onnxruntime backend on a GPU"):
        repository.config_pbtxt("onnxruntime", [], [], "cpu", 1, accelerator={"precision_mode": "FP32"})


def test_the_repository_layout(repository, tmp_path):
    model = tmp_path / "src" / "m.onnx"
    model.parent.mkdir()
    model.write_bytes(b"onnx")
    (model.parent / "m.onnx.data").write_bytes(b"weights")
    version = Path(repository.write(str(tmp_path / "repo"), "onnxruntime", "cfg\n", str(model), ["m.onnx.data"]))
    assert (tmp_path / "repo" / "model" / "config.pbtxt").read_text() == "cfg\n"
    assert (version / "model.onnx").read_bytes() == b"onnx"
    assert (version / "m.onnx.data").read_bytes() == b"weights"  # external data beside it, by its own name
    version = Path(repository.write(str(tmp_path / "repo2"), "python", "cfg\n", str(model)))
    assert "class TritonPythonModel" in (version / "model.py").read_text()


def _parse(text: str):
    """The text through Triton's ModelConfig message, when tritonclient brings it here."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        return None
    return text_format.Parse(text, model_config_pb2.ModelConfig())

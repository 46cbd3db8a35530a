"""Shape specialisation (shared/specialise.py), which TVM and MNN load: shape arithmetic folds
away, values do not change, and the specialised file is made once per model and shapes."""
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from shared import Runner, RunSpec, atomic
from shared import specialise as module
from shared.specialise import specialise, specialised_model


def shape_arithmetic_model():
    """y = x reshaped to [n, h*w] with the sizes computed from x's shape (as exporters write it),
    x sliced to the end with an INT64_MAX bound (from 1, and from 0: the whole axis, as
    `x[:, None]` exports), and the size of a data-dependent tensor via ReduceProd(Shape), which
    cannot fold."""
    const = lambda name, values: numpy_helper.from_array(np.array(values, dtype=np.int64), name)  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "zero"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
        helper.make_node("Greater", ["x", "zero_f"], ["positive"]),
        helper.make_node("NonZero", ["positive"], ["where"]),
        helper.make_node("Shape", ["where"], ["where_shape"]),
        helper.make_node("ReduceProd", ["where_shape"], ["count"], keepdims=0),
        helper.make_node("Slice", ["x", "start", "end", "axis"], ["tail"]),
        helper.make_node("Slice", ["x", "zeros", "end", "axis", "one"], ["whole"]),
    ]
    graph = helper.make_graph(
        nodes, "shapes", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "m"]),
         helper.make_tensor_value_info("count", TensorProto.INT64, []),
         helper.make_tensor_value_info("tail", TensorProto.FLOAT, ["n", 2, "h", "w"]),
         helper.make_tensor_value_info("whole", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [const("zero", 0), const("minus_one", [-1]), const("start", [1]), const("end", [2 ** 63 - 1]),
         const("axis", [1]), const("zeros", [0]), const("one", [1]),
         numpy_helper.from_array(np.array(0, dtype=np.float32), "zero_f")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_shape_arithmetic_folds_to_constants_with_the_same_outputs():
    model = shape_arithmetic_model()
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    expected = ReferenceEvaluator(model).run(None, {"x": x})
    done = specialise(model, {"x": [2, 3, 4, 5]})
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Reshape", "Greater", "NonZero", "Size", "Slice", "Identity"]
    assert done["reduceprod_to_size"] == 1 and done["whole_slices_to_identity"] == 1
    assert done["clamped_int64_sentinels"] == 1
    for got, want in zip(ReferenceEvaluator(model).run(None, {"x": x}), expected):
        np.testing.assert_array_equal(got, want)


def test_a_whole_slice_in_an_if_branch_becomes_identity():
    """As torchvision's batched NMS exports `offsets[:, None]`: inside an If branch, the bounds
    are Constant nodes and the axes and steps Unsqueezes of the outer graph's constants."""
    const = lambda name, values: numpy_helper.from_array(np.array(values, dtype=np.int64), name)  # noqa: E731
    branch = helper.make_graph([
        helper.make_node("Constant", [], ["starts"], value=const("s", [0])),
        helper.make_node("Constant", [], ["ends"], value=const("e", [2 ** 63 - 1])),
        helper.make_node("Unsqueeze", ["axis", "zero"], ["axes"]),
        helper.make_node("Unsqueeze", ["step", "zero"], ["steps"]),
        helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["whole"]),
    ], "else", [], [helper.make_tensor_value_info("whole", TensorProto.FLOAT, [4])])
    empty = helper.make_graph([helper.make_node("Identity", ["x"], ["same"])], "then", [],
                              [helper.make_tensor_value_info("same", TensorProto.FLOAT, [4])])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
         helper.make_node("Greater", ["total", "zero_f"], ["positive"]),
         helper.make_node("If", ["positive"], ["y"], then_branch=empty, else_branch=branch)],
        "if", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [const("zero", [0]), const("axis", 0), const("step", 1),
         numpy_helper.from_array(np.array(0, dtype=np.float32), "zero_f")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = -np.arange(4, dtype=np.float32)  # the else branch runs
    expected = ReferenceEvaluator(model).run(None, {"x": x})
    done = specialise(model, {"x": [4]})
    onnx.checker.check_model(model)
    assert done["whole_slices_to_identity"] == 1
    assert "Slice" not in [n.op_type for n in model.graph.node[-1].attribute[1].g.node]
    np.testing.assert_array_equal(ReferenceEvaluator(model).run(None, {"x": x})[0], expected[0])


@pytest.fixture
def runner(tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(shape_arithmetic_model(), str(path))
    return Runner(RunSpec(engine="mnn", model_path=str(path), inputs_path=str(tmp_path / "i.npz"),
                          cache_dir=str(tmp_path / "cache"), model_sha256="a" * 64))


def test_the_specialised_file_is_made_once_per_model_and_shapes(runner, monkeypatch):
    path, done = specialised_model(runner, {"x": [2, 3, 4, 5]})
    entry = os.path.dirname(path)
    assert entry.startswith(runner.spec.cache_dir) and entry.endswith("-specialised.onnx")
    assert sorted(os.listdir(entry)) == [".e2e-seal", "model.onnx", "specialise.json"]  # one sealed folder
    assert atomic.problem(entry) is None and done["reduceprod_to_size"] == 1
    assert [n.op_type for n in onnx.load(path).graph.node] == ["Reshape", "Greater", "NonZero", "Size", "Slice",
                                                                "Identity"]
    assert [d.dim_value for d in onnx.load(path).graph.input[0].type.tensor_type.shape.dim] == [2, 3, 4, 5]
    assert not [f for f in os.listdir(runner.spec.cache_dir) if atomic.is_partial(f)]

    def fail(*args):
        raise AssertionError("specialised again")

    monkeypatch.setattr(module, "specialise", fail)  # a second run reads the file and its record
    assert specialised_model(runner, {"x": [2, 3, 4, 5]}) == (path, done)
    monkeypatch.undo()
    other, _ = specialised_model(runner, {"x": [1, 3, 4, 5]})
    runner.spec.model_sha256 = "b" * 64
    changed, _ = specialised_model(runner, {"x": [2, 3, 4, 5]})
    assert len({path, other, changed}) == 3
    assert "cache_remade" not in runner.settings


@pytest.mark.parametrize("damaged", ["model.onnx", "specialise.json"])
def test_a_truncated_specialised_file_is_made_again_with_one_line(damaged, runner, capsys):
    path, done = specialised_model(runner, {"x": [2, 3, 4, 5]})
    capsys.readouterr()
    target = os.path.join(os.path.dirname(path), damaged)
    size = os.path.getsize(target)
    with open(target, "r+b") as f:
        f.truncate(size // 2)

    assert specialised_model(runner, {"x": [2, 3, 4, 5]}) == (path, done)
    onnx.checker.check_model(path)
    said = "{} has {} bytes, {} when it was written".format(damaged, size // 2, size)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("The cached specialised.onnx in ") and said in lines[0], lines
    assert runner.settings["cache_remade"] == "{}: damaged: {}".format(os.path.basename(os.path.dirname(path)), said)
    assert os.path.getsize(target) == size and atomic.problem(os.path.dirname(path)) is None


def test_an_unsealed_file_of_an_older_e2e_is_made_again(runner, capsys):
    """Before the cache entries were sealed, the model was a file at the entry's name with its
    record beside it: it is not trusted, and the entry is made again in its place."""
    path, done = specialised_model(runner, {"x": [2, 3, 4, 5]})
    entry = os.path.dirname(path)
    atomic.discard(entry)
    with open(entry, "wb") as f:
        f.write(b"not a model")
    assert specialised_model(runner, {"x": [2, 3, 4, 5]}) == (path, done)
    assert "is not sealed" in capsys.readouterr().out
    onnx.checker.check_model(path)


def test_graph_io_leaves_out_the_weights_older_exporters_list_as_inputs(tmp_path):
    """shared/tensors.py's graph_io, which the ONNX-reading runners (IREE, LiteRT, MNN, ncnn, TVM) share."""
    from shared.tensors import graph_io

    w = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
                              "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2]),
                                    helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 2]),
                               helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])], [w])
    onnx.save(helper.make_model(graph), str(tmp_path / "m.onnx"))
    assert graph_io(graph) == graph_io(str(tmp_path / "m.onnx")) == (["x"], ["z", "y"])

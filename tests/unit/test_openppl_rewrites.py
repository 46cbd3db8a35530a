"""The OpenPPL runner's rewrites for ppl.nn's x86 engine (runners/openppl/rewrites.py), each on a tiny
graph of the pattern torchvision's Faster R-CNN has. Checked here without ppl.nn: the rewritten graph
is valid ONNX, the pattern is gone, and ONNX's reference evaluator gives the same outputs, bit for bit
(tests/docker/test_openppl.py runs the Reciprocal one in the real image). The Pad one is checked with
ONNX Runtime too, in the ort engine's environment where e2e has made it."""
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from coordinator.engines import discover
from coordinator.launchers import VenvLauncher
from coordinator.launchers.venv import READY
from tests.unit.test_runner_modules import load_runner

rewrites = load_runner(Path(__file__).parents[2] / "runners" / "openppl" / "rewrites.py")
pytestmark = pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:divide by zero:RuntimeWarning")
X = np.array([[3.0, -0.0, 0.0, 1e-40], [np.inf, -7.5, 1e38, 0.1]], np.float32)  # a denormal, signed zeros
FLOAT_X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])


def _model(nodes, inputs=(FLOAT_X,), outputs=(("y", TensorProto.FLOAT, [2, 4]),), initializers=()):
    graph = helper.make_graph(nodes, "g", list(inputs), [helper.make_tensor_value_info(*o) for o in outputs],
                              list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    return model


def _rewrite_and_compare(model, feeds):
    """Rewrite `model`; it must stay valid ONNX and give the same outputs on `feeds`."""
    before = onnx.ModelProto()
    before.CopyFrom(model)
    done = rewrites.for_x86(model)
    onnx.checker.check_model(model, full_check=True)
    for got, expected in zip(ReferenceEvaluator(model).run(None, feeds), ReferenceEvaluator(before).run(None, feeds)):
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert np.array_equal(got, expected, equal_nan=True) and np.array_equal(np.signbit(got), np.signbit(expected))
    return done


def _ops(model):
    return [n.op_type for n in model.graph.node]


def test_a_reciprocal_becomes_the_same_division():
    model = _model([helper.make_node("Relu", ["x"], ["r"], name="/a/Relu"),
                    helper.make_node("Reciprocal", ["x"], ["inv"], name="/a/Reciprocal"),
                    helper.make_node("Add", ["inv", "r"], ["y"], name="/a/Add")])
    assert _rewrite_and_compare(model, {"x": X}) == {rewrites.RECIPROCAL: 1}  # 1/-0 = -inf, as Reciprocal gives
    node = model.graph.node[1]
    assert (node.op_type, node.name, list(node.output)) == ("Div", "/a/Reciprocal", ["inv"])  # names kept
    one = next(t for t in model.graph.initializer if t.name == node.input[0])
    assert (list(one.dims), one.data_type, onnx.numpy_helper.to_array(one).item()) == ([], TensorProto.FLOAT, 1.0)


def test_a_reciprocal_in_an_if_branch_is_rewritten_too():
    branch = lambda op: helper.make_graph(  # noqa: E731 - reads x from the outer graph
        [helper.make_node(op, ["x"], ["b"], name=f"/if/{op}")], op, [],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 4])])
    model = _model([helper.make_node("If", ["c"], ["y"], name="/if", then_branch=branch("Reciprocal"),
                                     else_branch=branch("Relu"))],
                   [FLOAT_X, helper.make_tensor_value_info("c", TensorProto.BOOL, [])])
    for c in (True, False):
        again = onnx.ModelProto()
        again.CopyFrom(model)
        assert _rewrite_and_compare(again, {"x": X, "c": np.array(c)}) == {rewrites.RECIPROCAL: 1}
    branches = {a.name: [n.op_type for n in a.g.node] for a in again.graph.node[0].attribute}
    assert branches == {"then_branch": ["Div"], "else_branch": ["Relu"]}


def test_readers_of_an_identity_read_its_input():
    # torch's export of zero biases: one initializer, an Identity per reader; ppl.nn rewires only the
    # first reader of an Identity and deletes its output (a graph output here: the Identity stays)
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [4], [0.0] * 4)
    model = _model([helper.make_node("Identity", ["zero"], ["bias"], name="/Identity"),
                    helper.make_node("Add", ["x", "bias"], ["a"]), helper.make_node("Sub", ["a", "bias"], ["y"])],
                   outputs=[("y", TensorProto.FLOAT, [2, 4]), ("bias", TensorProto.FLOAT, [4])], initializers=[zero])
    assert _rewrite_and_compare(model, {"x": X}) == {rewrites.IDENTITY: 2}
    assert [list(n.input) for n in model.graph.node] == [["zero"], ["x", "zero"], ["a", "zero"]]
    del model.graph.output[1]  # not a graph output: the Identity goes
    rewrites.for_x86(model)
    assert _ops(model) == ["Add", "Sub"]


def test_a_linear_resize_gets_pytorch_half_pixel_coordinates():
    image = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 4])
    sizes = helper.make_tensor("sizes", TensorProto.INT64, [4], [1, 1, 5, 7])
    empty = helper.make_tensor("empty", TensorProto.FLOAT, [0], [])
    model = _model([helper.make_node("Resize", ["x", "empty", "empty", "sizes"], ["y"], mode="linear")],
                   [image], [("y", TensorProto.FLOAT, [1, 1, 5, 7])], [sizes, empty])
    assert _rewrite_and_compare(model, {"x": np.arange(8, dtype=np.float32).reshape(1, 1, 2, 4) ** 2}) == {rewrites.RESIZE: 1}
    assert helper.get_attribute_value(model.graph.node[0].attribute[-1]) == b"pytorch_half_pixel"


def test_a_constant_of_an_empty_shape_becomes_a_scalar():
    # torchvision's anchor generator: ConstantOfShape([]) -> Shape -> ConstantOfShape -> Add
    empty = helper.make_tensor("empty", TensorProto.INT64, [0], [])
    nodes = [helper.make_node("ConstantOfShape", ["empty"], ["s"], value=helper.make_tensor("", TensorProto.FLOAT, [1], [2.0])),
             helper.make_node("Shape", ["s"], ["no_dims"]),
             helper.make_node("ConstantOfShape", ["no_dims"], ["t"]),  # default value: a float 0
             helper.make_node("Add", ["x", "t"], ["xt"]), helper.make_node("Mul", ["xt", "s"], ["y"])]
    model = _model(nodes, initializers=[empty])
    assert _rewrite_and_compare(model, {"x": X}) == {rewrites.EMPTY_SHAPE: 2}
    assert _ops(model) == ["Add", "Mul"]  # the Shape between them is dead, and dropped
    assert {t.name: list(t.dims) for t in model.graph.initializer} == {"s": [], "t": []}


def test_an_int32_range_runs_in_int64():
    bounds = [helper.make_tensor_value_info(n, TensorProto.INT32, []) for n in ("start", "limit", "delta")]
    model = _model([helper.make_node("Range", ["start", "limit", "delta"], ["y"], name="/Range")], bounds,
                   [("y", TensorProto.INT32, [None])])
    feeds = {"start": np.array(-3, np.int32), "limit": np.array(2 ** 31 - 1, np.int32), "delta": np.array(2 ** 29, np.int32)}
    assert _rewrite_and_compare(model, feeds) == {rewrites.RANGE: 1}
    assert _ops(model) == ["Cast", "Cast", "Cast", "Range", "Cast"] and model.graph.node[-1].name == "/Range"


@pytest.fixture(scope="module")
def ort_python(cache):
    """The ort engine's environment, made already (the tests never make it: minutes, and PyPI)."""
    engine = discover()["ort"]
    launcher = VenvLauncher(cache)
    if not (launcher.env_dir(engine) / READY).is_file():
        pytest.skip("no ort environment yet (`e2e bench --engines ort` or the integration tests make it)")
    return launcher.python(engine)


ORT_RUN = """import sys, numpy as np, onnxruntime as ort
feeds = dict(np.load(sys.argv[2]))
for i, path in enumerate(sys.argv[3:]):
    outputs = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)
    np.savez(sys.argv[1] + str(i), *outputs)
"""


def _ort_outputs(python, models, feeds, folder):
    """Each model's outputs from ONNX Runtime on `feeds`, run in the ort environment."""
    paths = []
    for i, model in enumerate(models):
        paths.append(str(folder / f"model{i}.onnx"))
        onnx.save(model, paths[-1])
    np.savez(folder / "feeds.npz", **feeds)
    subprocess.run([str(python), "-c", ORT_RUN, str(folder / "out"), str(folder / "feeds.npz"), *paths], check=True)
    return [[got[k] for k in sorted(got.files, key=lambda k: int(k.split("_")[1]))]
            for got in (np.load(folder / f"out{i}.npz") for i in range(len(models)))]


def test_a_pad_loses_its_empty_constant_value(ort_python, tmp_path):
    # torchvision's transform: the image padded at the end of H and W to a multiple of 32, the pads
    # computed from its shape at run time, and torch's export names no constant_value ("")
    image = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, None, None])
    ints = lambda name, values: helper.make_tensor(name, TensorProto.INT64, [len(values)], values)  # noqa: E731
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Slice", ["shape", "one", "three", "zero"], ["hw"]),
             helper.make_node("Add", ["hw", "stride_1"], ["hw_up"]), helper.make_node("Div", ["hw_up", "stride"], ["n"]),
             helper.make_node("Mul", ["n", "stride"], ["padded"]), helper.make_node("Sub", ["padded", "hw"], ["grow"]),
             helper.make_node("Concat", ["none", "grow"], ["pads"], axis=0),
             helper.make_node("Pad", ["x", "pads", ""], ["y"], name="/transform/Pad", mode="constant")]
    model = _model(nodes, [image], [("y", TensorProto.FLOAT, [3, None, None])],
                   [ints("one", [1]), ints("three", [3]), ints("zero", [0]), ints("stride", [32]),
                    ints("stride_1", [31]), ints("none", [0, 0, 0, 0])])
    before = onnx.ModelProto()
    before.CopyFrom(model)
    x = np.random.default_rng(0).normal(size=(3, 37, 45)).astype(np.float32)
    x[0, 0, :4] = [-0.0, 1e-40, np.inf, -3e38]
    assert _rewrite_and_compare(model, {"x": x}) == {rewrites.PAD: 1}
    assert list(model.graph.node[-1].input) == ["x", "pads"] and model.graph.node[-1].name == "/transform/Pad"
    (expected,), (got,) = _ort_outputs(ort_python, [before, model], {"x": x}, tmp_path)
    assert got.dtype == expected.dtype and got.shape == expected.shape == (3, 64, 64)
    assert got.tobytes() == expected.tobytes()  # bit for bit, signed zeros and the denormal included
    assert np.array_equal(got[:, :37, :45], x) and not got[:, 37:].any() and not got[:, :, 45:].any()


def test_a_model_without_any_of_them_is_left_as_it_is():
    model = _model([helper.make_node("Relu", ["x"], ["y"])])
    before = onnx.ModelProto()
    before.CopyFrom(model)
    assert rewrites.for_x86(model) == {} and model == before

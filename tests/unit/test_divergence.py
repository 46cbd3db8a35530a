"""The localisation's pure parts: the graph's order and cuts, marked copies, and the first
divergent node of a comparison, on the small conv net's tensors with errors put in by hand."""
import numpy as np
import onnx
import pytest

from coordinator.report import charts
from coordinator.divergence.search import compare_run, localise
from coordinator.divergence.onnx_graph import Graph, marked_copy
from tests.fixtures.onnx_models import small_convnet

ORDER = ["/stem/conv", "/stem/relu", "/block/conv", "/block/scale", "/block/add", "/block/relu", "/head/pool",
         "/head/flatten", "/head/fc"]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    return Graph.load(small_convnet(tmp_path_factory.mktemp("m") / "m.onnx"))


def tensors(graph, seed=0):
    rng = np.random.default_rng(seed)
    return {t: rng.standard_normal((1, 8, 4, 4)).astype(np.float32) for t in graph.exposable}


def off(sample, changes):
    """A copy of `sample` with each named tensor scaled by its factor (a node gone wrong)."""
    return {t: a * changes.get(t, 1.0) for t, a in sample.items()}


def run(graph, reference, outputs, atol=1e-3, rtol=1e-3):
    return localise(graph, compare_run(graph, graph.exposable, reference, outputs, atol, rtol), "x", "fp32", atol, rtol)


def test_nodes_are_in_topological_order_with_depth_even_when_the_file_is_not(tmp_path, graph):
    model = onnx.load(str(small_convnet(tmp_path / "m.onnx")))
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(reversed(nodes))

    shuffled = Graph(model)

    assert [n.name for n in shuffled.nodes] == [n.name for n in graph.nodes] == ORDER
    assert [n.depth for n in graph.nodes] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert graph.exposable == ["conv1", "act1", "conv2", "scaled", "sum", "act2", "pooled", "flat", "logits"]


def test_a_cut_holds_what_the_rest_of_the_graph_reads(graph):
    assert graph.cut(3) == ["act1", "conv2"]  # act1 skips ahead to the Add
    assert graph.cut(len(graph.nodes)) == ["logits"]


def test_a_marked_copy_adds_outputs_after_the_model_s_own_with_their_types(tmp_path, graph):
    path = marked_copy(graph.model, ["conv1", "logits", "sum"], tmp_path / "marked.onnx", graph.types)

    outputs = onnx.load(str(path)).graph.output
    assert [o.name for o in outputs] == ["logits", "conv1", "sum"]
    assert outputs[1].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    onnx.checker.check_model(str(path))


def test_the_first_divergent_node_is_the_one_whose_inputs_agree(graph):
    reference = tensors(graph)
    outputs = off(reference, {t: 1.05 for t in ["scaled", "sum", "act2", "pooled", "flat", "logits"]})

    found = run(graph, reference, outputs)

    assert found.status == "found" and found.first.node == "/block/scale" and found.first.op == "Mul"
    assert found.first.ratio > 1 and found.first.rel_error == pytest.approx(0.05)
    assert [e.tensor for e in found.inputs] == ["conv2"] and found.inputs[0].passed
    assert [e.node for e in found.chain] == ORDER[4:] and found.chain_length == 5
    assert found.drift[0].op == "Mul" and found.drift[0].added == pytest.approx(0.05)
    assert [d.depth for d in found.by_depth] == list(range(1, 10)) and found.by_depth[3].ratio > 1
    assert "first divergent node /block/scale (Mul)" in found.summary()


def test_a_divergence_its_readers_make_right_is_masked(graph):
    """An int8 Conv quantized with the following Relu's range: clipped, then right again."""
    reference = tensors(graph)

    found = run(graph, reference, off(reference, {"conv1": 0.5, "act1": 1.0002}))

    assert found.status == "agrees" and found.first is None
    assert "conv1" in found.note and "bring back within tolerance" in found.note
    drift = {o.op: o.added for o in found.drift}
    assert drift["Conv"] == pytest.approx(2e-4, rel=1e-3) and drift["Relu"] == 0  # on the Conv, not the Relu


def test_shapes_that_differ_diverge_with_a_note_and_missing_tensors_are_not_wrong(graph):
    reference = tensors(graph)
    outputs = off(reference, {"pooled": 1.5, "flat": 1.5, "logits": 1.5})
    outputs["act2"] = np.zeros((1, 8, 5, 5), np.float32)
    del outputs["sum"]  # the engine did not return it: unknown, not divergent

    found = run(graph, reference, outputs)

    assert found.first.node == "/block/relu" and "shape [1, 8, 5, 5]" in found.first.note
    assert found.missing == ["sum"] and "sum could not be compared" in found.note
    depth = {d.depth: d for d in found.by_depth}
    assert 5 not in depth and depth[6].ratio is None  # not comparable as numbers: drawn at the top


def test_within_tolerance_everywhere_agrees(graph):
    reference = tensors(graph)

    found = run(graph, reference, off(reference, {"sum": 1.0001}))

    assert found.status == "agrees" and found.compared == 9 and not found.drift[0].beyond


def test_the_error_by_depth_chart_draws_the_tolerance_and_the_first_node():
    svg = charts.error_by_depth([(1, 1e-4), (2, 30.0), (3, None)], 2, "Error <by> depth")

    assert svg.startswith("<svg") and "Error &lt;by&gt; depth" in svg and "first divergent" in svg
    assert svg.count("<circle") == 3 and svg.count('fill="#c0392b"') == 2  # beyond tolerance: red
    assert charts.error_by_depth([], None, "t") == ""

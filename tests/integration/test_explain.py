"""Localising a divergence with real engines: a graph with a defect introduced in one node, run
on ONNX Runtime and OpenVINO against ONNX Runtime on the intact graph, names that node."""
import onnx
import pytest

from coordinator.engines import discover
from coordinator.launchers import VenvLauncher
from coordinator.localise import Search, Side, reference_side, search
from coordinator.onnx_graph import Graph
from coordinator.parity import TOLERANCES
from shared import RunSpec
from tests.fixtures.onnx_models import small_convnet, small_convnet_samples

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AFTER_SCALE = ["/block/add", "/block/relu", "/head/pool", "/head/flatten", "/head/fc"]


def localise_on(engine_id, cache, tmp_path, defect="", precision="fp32", **options):
    """`engine_id` runs the small conv net with `defect`; ONNX Runtime the intact one."""
    launcher = VenvLauncher(cache)
    engine, ort = discover()[engine_id], discover()["ort"]
    launcher.prepare(engine)
    launcher.prepare(ort)
    intact = onnx.load(str(small_convnet(tmp_path / "intact.onnx")))
    altered = onnx.load(str(small_convnet(tmp_path / "altered.onnx", defect))) if defect else intact
    spec = RunSpec(engine=engine_id, model_path="", inputs_path="", precision=precision, threads=2,
                   cache_dir=str(tmp_path / "cache"))
    atol, rtol = TOLERANCES[precision]
    s = Search(Graph(intact), Side(engine, launcher, spec, altered), reference_side(launcher, ort, spec, intact),
               small_convnet_samples()[0], tmp_path / "work", atol, rtol, timeout=600)
    return search(s, engine_id, precision, **options)


@pytest.mark.parametrize("engine_id", ["ort", "openvino"])
@pytest.mark.parametrize("defect, node, after", [("scale", "/block/scale", AFTER_SCALE),
                                                  ("leaky", "/block/relu", AFTER_SCALE[2:])])
def test_the_first_divergent_node_is_the_altered_one(engine_id, defect, node, after, cache, tmp_path):
    found = localise_on(engine_id, cache, tmp_path, defect)

    assert found.status == "found", found.note
    assert found.first.node == node and not found.first.passed and found.first.ratio > 1
    assert found.inputs and all(e.passed for e in found.inputs)  # what it reads is right
    assert [e.node for e in found.chain] == after  # the chain: every node it feeds, in order
    assert found.method.startswith("all") and found.runs == 1 and not found.missing


def test_an_intact_graph_agrees(cache, tmp_path):
    found = localise_on("openvino", cache, tmp_path)

    assert found.status == "agrees" and found.first is None
    assert found.compared == 9 and "within atol" in found.note


def test_bisection_finds_the_same_node(cache, tmp_path):
    """Over the budget, the graph is searched by cuts: the same node, in a few runs of few tensors."""
    found = localise_on("ort", cache, tmp_path, "scale", budget_mb=0, window=2)

    assert found.status == "found", found.note
    assert found.first.node == "/block/scale"
    assert found.method.startswith("bisection") and 2 <= found.runs <= 5
    assert "bisected" in found.note


def test_int8_rows_carry_the_drift_per_operator(cache, tmp_path):
    """ONNX Runtime's static int8 quantization: the error each operator type adds. A Conv or Add
    followed by a Relu is quantized with the Relu's range (clipped at zero), which the Relu makes
    right: such a tensor is masked, not the first divergence."""
    found = localise_on("ort", cache, tmp_path, precision="int8")

    drift = {o.op: o for o in found.drift}
    assert found.precision == "int8" and found.compared == 9
    assert found.status == "agrees" and "conv1, sum" in found.note, found.note
    assert drift["Conv"].added > 0 and drift["Gemm"].added > 0
    assert sum(o.added for o in found.drift) > 1e-3  # quantization loses something
    assert found.by_depth and found.by_depth[-1].ratio is not None

"""Localising a divergence with real engines: a graph with a defect introduced in one node, run
on ONNX Runtime, OpenVINO and TVM against ONNX Runtime on the intact graph, names that node."""
import onnx
import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.engines import discover
from coordinator.launchers import VenvLauncher
from coordinator.divergence.localise import Search, Side, reference_side, search
from coordinator.divergence.onnx_graph import Graph
from coordinator.report.parity import TOLERANCES
from coordinator.report.document import load_report
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


@pytest.mark.parametrize("engine_id", ["ort", "openvino", "tvm"])
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


def test_bench_explain_names_the_conv_that_int8_breaks_and_explain_runs_on_demand(tmp_path, cache):
    """`bench --explain` on a net whose first Conv has one channel 1000x the others: ORT's
    per-tensor int8 activations round the small channels away there. Then `e2e explain` on
    the fp32 row, which agrees, and on rows it cannot explain."""
    out = tmp_path / "run"
    args = ["bench", "--model", "tests.fixtures.tiny:outlier_cnn", "--engines", "torch,ort", "--precision", "fp32,int8",
            "--weights", "random", "--warmup", "1", "--iterations", "3", "--device", "cpu", "--launcher", "venv",
            "--out", str(out), "--cache-dir", str(cache), "--explain"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {(r.engine, r.precision_requested): r for r in load_report(out).results}

    int8 = rows[("ort", "int8")]
    assert not int8.parity.passed
    found = int8.divergence
    assert found.status == "found", found.note
    # a factory's model is exported through the flattening wrapper (its `model`): node names carry it
    assert (found.first.node, found.first.op) == ("/model/model.0/Conv", "Conv") and found.first.ratio > 10
    assert found.attributes["kernel_shape"] == "[3, 3]"
    assert [e.node for e in found.chain][:3] == ["/model/model.1/Relu", "/model/model.2/Conv", "/model/model.3/Relu"]
    assert found.drift[0].op == "Conv" and found.drift[0].beyond >= 1
    assert "matches PyTorch" in found.reference
    assert rows[("ort", "fp32")].divergence is None  # passed parity: not localised unless asked
    html, md = (out / "report.html").read_text(), (out / "report.md").read_text()
    assert "Where ort int8 diverges" in html and "first divergent node /model/model.0/Conv (Conv)" in html and "<svg" in html
    assert "first divergent node /model/model.0/Conv (Conv)" in md and "| Conv | 2 |" in md

    result = CliRunner().invoke(app, ["explain", str(out), "ort", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    fp32 = {(r.engine, r.precision_requested): r for r in load_report(out).results}[("ort", "fp32")]
    assert fp32.divergence.status == "agrees" and fp32.divergence.compared == 7
    assert "divergence: agrees" in result.output

    result = CliRunner().invoke(app, ["explain", str(out), "torch", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert "takes the PyTorch model" in result.output

    result = CliRunner().invoke(app, ["explain", str(out), "tvm"])
    assert result.exit_code == 1 and "no row of tvm; rows: " in result.output
    assert all(label in result.output for label in ("torch fp32", "ort fp32", "ort int8"))  # in the order they ended

"""report.html opens with the decision: the verdict's sentences and the passing rows ranked by
speed-up, intervals as whiskers; the results table ranks rows and keeps long notes folded."""
from coordinator.report import charts
from coordinator.report.parity import Parity
from coordinator.report.document import Row
from coordinator.run.round_stats import Estimate, Rounds
from coordinator.report.views import report_html
from shared import Latency
from tests.unit.test_views import detector_report

LONG = "ONNX Runtime cannot run NonMaxSuppression with these inputs: " + "x" * 200


def rows():
    def ok(engine, p50, passed=True, vs=None):
        parity = None if engine == "torch" else Parity(passed, "tensor", "fp32", 1e-3, 1e-3, note="boxes differ")
        rounds = Rounds([p50 * (1 + i / 100) for i in range(8)], vs_reference=vs) if vs else None
        return Row(engine=engine, status="ok", precision="fp32", precision_requested="fp32",
                   latency_ms=Latency.from_values([p50] * 3), parity=parity, rounds=rounds)

    return [Row(engine="tvm", status="failed", precision_requested="fp32", stage="convert", reason=LONG),
            ok("torch", 10.0, vs=Estimate(1.0, 1.0, 1.0, 8)),
            Row(engine="trt", status="skipped", precision_requested="fp32", reason="TensorRT does not run on cpu"),
            ok("openvino", 2.0, passed=False),
            ok("ort", 4.0, vs=Estimate(2.5, 2.3, 2.7, 8)),
            ok("onnx2torch", 5.0, vs=Estimate(2.0, 1.9, 2.1, 8))]


def page(tmp_path):
    report, run_dir = detector_report(tmp_path)
    report.results = rows()
    return report_html.render(report, run_dir)


def test_the_page_opens_with_the_decision(tmp_path):
    html = page(tmp_path)
    decision = html[html.index('<h2 id="decision">'):html.index('<h2 id="results">')]
    assert html.index("<h2") == html.index('<h2 id="decision">')  # the first section
    assert "Deploy ort fp32" in decision and "runner-up, onnx2torch fp32" in decision
    assert 'id="verdict"' not in html
    # the chart: passing rows only, fastest first; openvino failed parity, and is not there
    chart = decision[decision.index("<svg"):]
    assert [chart.index(f">{label}<") < chart.index(f">{after}<") for label, after in
            (("ort fp32", "onnx2torch fp32"), ("onnx2torch fp32", "torch fp32"))] == [True, True]
    assert "openvino" not in chart and "2.50x [2.30–2.70]" in chart and "1.00x [" not in chart


def test_the_results_table_ranks_rows_and_folds_long_notes(tmp_path):
    html = page(tmp_path)
    table = html[html.index('<h2 id="results">'):html.index("</table>")]
    order = [table.index(f"<td>{engine}</td>") for engine in ("openvino", "ort", "onnx2torch", "torch", "tvm", "trt")]
    assert order == sorted(order)  # ok rows by p50 (parity aside), then failed, then skipped
    assert "2.50x <span>[2.30–2.70]</span>" in table and '<td class="fail">FAILED</td>' in table
    # a long note: its gist in the cell, linked to the whole of it below the table; a short one stays
    assert '<td class="row-note"><a href="#note-5">at convert</a></td>' in table and "x" * 200 not in table
    below = html[html.index("</table>"):html.index("<svg", html.index("</table>"))]
    assert '<details class="row-note" id="note-5"><summary><strong>tvm fp32</strong>: at convert' in below
    assert "x" * 200 in below and "TensorRT" not in below
    assert '<td class="row-note">TensorRT does not run on cpu</td>' in table


def test_the_ranked_speedup_chart():
    svg = charts.ranked_speedup([("a <b>", 3.0, (2.5, 3.2)), ("c", 0.5, None)], "T")
    assert "a &lt;b&gt;" in svg and "3.00x [2.50–3.20]" in svg and ">0.50x<" in svg
    assert charts.ranked_speedup([], "T") == ""
    long = charts.ranked_speedup([("ort int8 (asked fp32) throughput b4 c=2 tuned", 2.0, None)], "T")
    assert "<title>ort int8 (asked fp32) throughput b4 c=2 tuned</title>ort int8 (asked fp32) t…" in long

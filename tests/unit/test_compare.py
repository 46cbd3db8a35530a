from coordinator.compare import compare_runs
from coordinator.report import Report, Row
from shared import Latency


def row(engine, p50, status="ok", passed=True):
    from coordinator.parity import Parity

    r = Row(engine=engine, status=status, precision_requested="fp32", precision="fp32",
            latency_ms=Latency.from_values([p50]) if status == "ok" else None)
    r.parity = Parity(passed, "tensor", "fp32", 1e-3, 1e-3) if status == "ok" and engine != "torch" else None
    return r


def report(*rows):
    return Report(e2e_version="0", created="", command="", run_dir="", setup={}, device={}, model={}, data={},
                  results=list(rows))


def test_regressions_are_slower_p50_failed_parity_or_lost_status():
    a = report(row("torch", 10), row("ort", 5), row("openvino", 5), row("tvm", 5))
    b = report(row("torch", 10.5), row("ort", 6), row("openvino", 5, passed=False), row("tvm", 0, status="failed"))
    changes = {c.engine: c for c in compare_runs(a, b, threshold=0.10)}
    assert changes["torch"].regression == ""  # +5% is within the threshold
    assert changes["ort"].regression == "p50 +20.0%"
    assert changes["openvino"].regression == "parity now fails"
    assert changes["tvm"].regression == "was ok, now failed"


def test_rows_only_in_one_run_are_listed():
    changes = compare_runs(report(row("ort", 5)), report(row("tvm", 5)), 0.1)
    assert {(c.engine, c.status_a, c.status_b) for c in changes} == {("tvm", "absent", "ok"), ("ort", "ok", "absent")}
    assert [c.regression for c in changes if c.engine == "ort"] == ["was ok, now absent"]

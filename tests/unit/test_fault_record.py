"""A run made under the fault-injection hooks (E2E_FAULT, E2E_KILL_AT: shared/faults.py) says
so: setup.faults and the row's fault in report.json, and the first line of every report."""
import json

from rich.console import Console

from coordinator.cli.summary import summary_table
from coordinator.engines import discover
from coordinator.report import faults
from coordinator.report.document import Report, Row
from coordinator.config import BenchConfig
from coordinator.report.setup import Setup
from coordinator.report.views import write_report
from shared import Latency
from shared.result import RunResult
from tests.unit.test_views import detector_report

HEADLINE = "FAULT INJECTED (test hooks, shared/faults.py): E2E_FAULT=ort=abort,tvm=hang"


def _setup() -> Setup:
    return Setup(config=BenchConfig.of(model="-", device="cpu"), copy_policy="-", timed_region="-")


def test_the_setup_records_the_hooks_set_when_it_was_made(monkeypatch):
    monkeypatch.delenv("E2E_FAULT", raising=False)
    monkeypatch.delenv("E2E_KILL_AT", raising=False)
    clean = _setup()
    assert clean.faults is None and "faults" not in clean.to_dict()  # a key the run did not have stays out
    monkeypatch.setenv("E2E_KILL_AT", "convert,venv")
    assert _setup().faults == {"E2E_KILL_AT": "convert,venv"}
    assert Setup.from_dict(clean.to_dict()).faults is None  # read back as written, not from this environment
    monkeypatch.setenv("E2E_FAULT", "ort=abort")
    assert Setup.from_dict(_setup().to_dict()).faults == {"E2E_FAULT": "ort=abort", "E2E_KILL_AT": "convert,venv"}


def test_a_launched_row_of_the_engine_named_records_its_fault(monkeypatch):
    monkeypatch.setenv("E2E_FAULT", "ort=abort,tvm=hang")
    failed = RunResult("ort", "failed", stage="load", reason="the runner died (SIGABRT)")
    ort = Row.make(discover()["ort"], "venv", "fp32", failed)
    skipped = Row.make(discover()["ort"], "", "fp32", RunResult("ort", "skipped", reason="no venv"))
    other = Row.make(discover()["openvino"], "venv", "fp32", RunResult("openvino", "ok", precision="fp32",
                                                                       latency_ms=Latency.from_values([1.0, 1.1])))
    assert (ort.fault, skipped.fault, other.fault) == ("abort", "", "")
    assert ort.note() == "FAULT INJECTED: abort; at load: the runner died (SIGABRT)"
    assert faults.injected("tvm") == "hang" and faults.injected("torch") == ""


def test_every_report_says_so_on_its_first_line(tmp_path, monkeypatch):
    monkeypatch.setenv("E2E_FAULT", "ort=abort,tvm=hang")
    monkeypatch.delenv("E2E_KILL_AT", raising=False)
    report, run_dir = detector_report(tmp_path)  # its setup made under the hook, as bench makes it
    report.results.append(Row.make(discover()["ort"], "venv", "fp32", RunResult("ort", "failed", reason="died")))
    monkeypatch.delenv("E2E_FAULT")  # the views read the report, not the environment
    write_report(report, run_dir)
    data = json.loads((run_dir / "report.json").read_text())
    assert data["setup"]["faults"] == {"E2E_FAULT": "ort=abort,tvm=hang"}
    assert [r["fault"] for r in data["results"]] == ["", "abort"]
    assert (run_dir / "report.md").read_text().splitlines()[0] == f"# e2e report: tiny — {HEADLINE}"
    assert "- fault injection: E2E_FAULT=ort=abort,tvm=hang" in (run_dir / "report.md").read_text()
    html = (run_dir / "report.html").read_text()
    assert f'<h1>e2e report: tiny — <span class="failed">{HEADLINE}</span></h1>' in html
    console = Console(width=200, record=True)
    console.print(summary_table(Report.load(str(run_dir / "report.json"))))
    assert console.export_text().splitlines()[0].strip() == HEADLINE


def test_a_report_without_hooks_has_no_such_line(tmp_path, monkeypatch):
    monkeypatch.delenv("E2E_FAULT", raising=False)
    monkeypatch.delenv("E2E_KILL_AT", raising=False)
    report, run_dir = detector_report(tmp_path)
    write_report(report, run_dir)
    assert report.fault_headline() == "" and "FAULT" not in (run_dir / "report.md").read_text()
    assert "faults" not in json.loads((run_dir / "report.json").read_text())["setup"]


def test_rows_kept_from_a_run_under_a_hook_still_say_so():
    """--resume keeps the setup of the first run: a fault asked only of the resumed rows is on
    those rows, and the first line names it too."""
    assert faults.headline(None, {"ort": "nan"}) == "FAULT INJECTED (test hooks, shared/faults.py): E2E_FAULT=ort=nan"
    assert faults.headline({"E2E_KILL_AT": "convert"}, {}) == \
        "FAULT INJECTED (test hooks, shared/faults.py): E2E_KILL_AT=convert"
    assert faults.headline({"E2E_FAULT": "ort=abort"}, {"ort": "abort", "tvm": "hang"}).endswith(
        "E2E_FAULT=ort=abort,tvm=hang")
    assert faults.headline(None, {}) == ""


def test_compare_warns_of_a_run_made_under_a_hook(tmp_path, monkeypatch):
    from coordinator.report.compare import differences

    monkeypatch.delenv("E2E_FAULT", raising=False)
    monkeypatch.delenv("E2E_KILL_AT", raising=False)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    clean, _ = detector_report(tmp_path / "a")
    monkeypatch.setenv("E2E_FAULT", "ort=nan")
    faulted, _ = detector_report(tmp_path / "b")
    assert differences(clean, faulted) == ["run B: FAULT INJECTED (test hooks, shared/faults.py): E2E_FAULT=ort=nan"]
    assert differences(clean, clean) == []

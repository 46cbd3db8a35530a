"""The report reads what it needs of a scenario from the scenario (shared/scenarios/): a scenario
registered here, with no edit to verdict.py or sweep.py, is ranked, priced and labelled by its
declarations, and a report naming a scenario no longer registered still renders."""
import re
from pathlib import Path

import pytest

from coordinator.report import sweep
from coordinator.report.document import Row
from coordinator.report.parity import Parity
from coordinator.report.verdict import decide
from coordinator.report.views import write_report
from shared import Latency, scenarios
from tests.fixtures.reports import report_v1

ROOT = Path(__file__).parents[2]


class Bursts(scenarios.Scenario):
    """A throw-away scenario: ranked, priced, and its own point label."""

    name = "bursts"
    summary = "bursts of requests"
    concurrent = True
    ranked = True
    priced = True

    def point_label(self, batch, concurrency):
        return f"bursts of {concurrency} x b{batch}"


@pytest.fixture
def bursts(monkeypatch):
    monkeypatch.setitem(scenarios.REGISTRY, "bursts", Bursts())


def row(engine, p50, scenario, batch=1, concurrency="1", per_s=None):
    return Row(engine=engine, status="ok", precision="fp32", precision_requested="fp32",
               latency_ms=Latency.from_values([p50] * 5), scenario=scenario, batch_size=batch,
               concurrency_requested=concurrency, throughput_per_s=per_s,
               parity=None if engine == "torch" else Parity(True, "tensor", "fp32", 1e-3, 1e-3))


def report(rows, price=None):
    out = report_v1(results=rows)
    out.setup.config.reporting.price_per_hour = price
    return out


def test_a_registered_scenario_is_ranked_priced_and_labelled_by_its_declarations(bursts):
    rows = [row("torch", 60.0, "latency", per_s=16.7), row("ort", 40.0, "bursts", per_s=100.0),
            row("openvino", 30.0, "bursts", batch=4, concurrency="2", per_s=250.0),
            row("tvm", 20.0, "throughput", per_s=50.0)]
    v = decide(report(rows, price=3.6))
    # batch 1 of the ranked scenarios: bursts' joins latency's, batch 4 and throughput do not
    assert [r.engine for r in v.ranked] == ["ort", "torch"] and v.best.engine == "ort"
    costs = "\n".join(v.costs)  # the priced scenarios' rows: bursts' and throughput's
    assert "costs 0.01 per 1,000 inferences (100.0/s)" in costs and "(250.0/s)" in costs and "(50.0/s)" in costs
    pivot = sweep.pivot(report(rows))
    assert {"latency b1", "bursts of 1 x b1", "bursts of 2 x b4", "throughput b1 c=1"} == set(pivot.columns)


def test_a_scenario_that_does_not_declare_itself_ranked_or_priced_is_neither(bursts, monkeypatch):
    monkeypatch.setattr(Bursts, "ranked", False)
    monkeypatch.setattr(Bursts, "priced", False)
    v = decide(report([row("torch", 60.0, "latency"), row("ort", 40.0, "bursts", per_s=100.0)], price=3.6))
    assert [r.engine for r in v.ranked] == ["torch"] and v.costs == []


def test_a_report_naming_a_scenario_no_longer_registered_still_renders(tmp_path):
    rows = [row("torch", 60.0, "latency", per_s=16.7), row("ort", 40.0, "offline", batch=2, concurrency="4", per_s=80.0)]
    old = report(rows, price=3.6)
    v = decide(old)
    assert [r.engine for r in v.ranked] == ["torch"] and v.costs == []  # neither ranked nor priced
    assert "offline b2" in set(sweep.pivot(old).columns)  # labelled by name and batch
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_report(old, run_dir)
    assert "offline b2" in (run_dir / "report.html").read_text()
    assert "offline b2" in (run_dir / "report.md").read_text()


@pytest.mark.parametrize("path", ["coordinator/report/verdict.py", "coordinator/report/sweep.py",
                                  "coordinator/report/views/report_html.py", "coordinator/report/views/report_md.py"])
def test_the_report_names_no_scenario(path):
    """No comparison with a scenario's name (a dict key "throughput" is a column, not a scenario)."""
    source = (ROOT / path).read_text()
    name = r"""["'](latency|throughput)["']"""
    assert not re.search(rf"(==|!=|\bin)\s*\(?{name}|{name}\s*(==|!=)", source)

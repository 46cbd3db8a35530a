"""The decision a report opens with."""
import types
from dataclasses import replace

from coordinator.report.parity import Parity
from coordinator.report.document import Row
from coordinator.run.round_stats import summarise
from coordinator.report.verdict import decide
from shared import Latency
from tests.fixtures.reports import report_v1


def rows(values, cpu_flags=()):
    figures = summarise(values, "torch fp32", 0.02)
    out = []
    for key, rounds in values.items():
        engine = key.split()[0]
        r = Row(engine=engine, status="ok", precision="fp32", precision_requested="fp32",
                latency_ms=Latency.from_values(rounds), rounds=figures[key],
                parity=None if engine == "torch" else Parity(True, "tensor", "fp32", 1e-3, 1e-3))
        out.append(r)
    base = report_v1(results=out)
    return replace(base, device=replace(base.device, cpu_flags=list(cpu_flags)))


def test_the_fastest_passing_row_wins_by_a_paired_margin():
    drift = [1.0, 1.2, 0.9, 1.1, 1.25, 0.95, 1.05, 1.15]
    report = rows({"torch fp32": [60 * d for d in drift], "ort fp32": [40 * d for d in drift],
                   "openvino fp32": [30 * d for d in drift]}, cpu_flags=["avx512_bf16", "amx_int8"])
    v = decide(report)
    assert v.best.engine == "openvino" and v.runner_up.engine == "ort" and v.paired
    assert abs(v.margin.value - 40 / 30) < 1e-9 and v.margin.low > 1  # drift cancels in the pairing
    text = "\n".join(v.lines())
    assert text.startswith("Deploy openvino fp32") and "1.33x faster than the runner-up, ort fp32" in text
    assert "no bf16 row ran" in text and "no int8 row ran" in text


def test_two_rows_within_the_noise_are_indistinguishable():
    drift = [1.0, 1.2, 0.9, 1.1, 1.25, 0.95, 1.05, 1.15]
    noise = [1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01, 0.99]
    report = rows({"torch fp32": [60 * d for d in drift], "ort fp32": [40 * d for d in drift],
                   "openvino fp32": [40 * d * e for d, e in zip(drift, noise)]})
    v = decide(report)
    assert v.margin.low <= 1 <= v.margin.high
    assert any(line.startswith("Indistinguishable here from") for line in v.lines())


def test_a_row_that_fails_parity_is_never_the_verdict():
    report = rows({"torch fp32": [60.0] * 8, "ort fp32": [40.0] * 8})
    report.results[1].parity = Parity(False, "tensor", "fp32", 1e-3, 1e-3)
    v = decide(report)
    assert v.best.engine == "torch" and v.runner_up is None


def test_an_accuracy_budget_admits_a_row_that_fails_parity_but_keeps_its_task_metric():
    from coordinator.report.accuracy import Accuracy

    report = rows({"torch fp32": [60.0] * 8, "ort fp32": [40.0] * 8})
    report.results[1].parity = Parity(False, "tensor", "fp32", 1e-3, 1e-3)
    report.results[1].accuracy = Accuracy(metric="top-1", value=0.754, reference=0.756, drop=0.002)
    assert decide(report).best.engine == "torch"
    report.setup.config.reporting.accuracy_budget = 0.005
    v = decide(report)
    assert v.best.engine == "ort" and "within the accuracy budget" in v.lines()[0]


def test_the_pareto_front_keeps_what_no_row_beats_on_both_latency_and_fidelity():
    from coordinator.report.parity import TensorParity

    report = rows({"torch fp32": [60.0] * 8, "ort fp32": [40.0] * 8, "openvino fp32": [30.0] * 8,
                   "mnn fp32": [50.0] * 8})
    diffs = {"ort": 1e-6, "openvino": 1e-3, "mnn": 1e-3}  # mnn: slower than openvino and no closer
    for r in report.results:
        if r.engine in diffs:
            r.parity.outputs = [TensorParity("y", True, max_abs=diffs[r.engine])]
    v = decide(report)
    assert [r.engine for r in v.front] == ["openvino", "ort", "torch"]
    assert any(line.startswith("Pareto front of latency against fidelity") for line in v.lines())


def test_a_price_per_hour_gives_the_cost_of_1000_inferences_per_throughput_row():
    report = rows({"torch fp32": [60.0] * 8})
    r = report.results[0]
    r.scenario, r.throughput_per_s = "throughput", 100.0
    report.setup.config.reporting.price_per_hour = 3.6
    assert "costs 0.01 per 1,000 inferences" in "\n".join(decide(report).lines())


def test_the_best_rows_arithmetic_is_held_against_the_measured_peak_of_its_precision():
    from coordinator.report.verdict import arithmetic

    report = types.SimpleNamespace(model=types.SimpleNamespace(gflop=8.0),
                                   device=types.SimpleNamespace(peak_gflops={"fp32": 200.0, "bf16": 640.0, "int8": None}),
                                   setup=types.SimpleNamespace(setting=lambda name: 2))
    row = types.SimpleNamespace(precision="fp32", latency_ms=types.SimpleNamespace(p50=50.0))
    assert arithmetic(report, row) == ("Its arithmetic: 160 GFLOP/s (8 GFLOP a call), 80% of this machine's measured "
                                       "fp32 peak (200 GFLOP/s, a matrix product on 2 threads); peaks here above "
                                       "it: bf16 640.")
    report.model.gflop = None
    assert arithmetic(report, row) == ""

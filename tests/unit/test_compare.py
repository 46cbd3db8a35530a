from dataclasses import replace

import numpy as np
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.report.compare import NO_SAMPLES, NOT_SIGNIFICANT, compare_runs, differences
from coordinator.report.document import Report, Row
from shared import Latency, Measurement
from tests.fixtures.reports import report_v1

# 8 calls a side, widely spread: the median is 12% slower, but the two sets overlap almost entirely
NOISY_A = [60.0, 80.0, 90.0, 100.0, 100.0, 110.0, 120.0, 140.0]
NOISY_B = [70.0, 85.0, 105.0, 110.0, 114.0, 125.0, 130.0, 150.0]


def row(engine, p50=None, status="ok", passed=True, samples=None, version=""):
    """A row whose latency is one call of `p50` ms, or `samples` kept as every timed call."""
    from coordinator.report.parity import Parity

    values = list(samples) if samples is not None else [p50]
    r = Row(engine=engine, status=status, precision_requested="fp32", precision="fp32", engine_version=version,
            latency_ms=Latency.from_values(values) if status == "ok" else None)
    if samples is not None:
        r.measurement = Measurement(stop="count", target_ci=None, warmup_calls=0, warmup_s=0.0, timed_s=1.0, gc="",
                                    latencies_ms=values, input_index=[0] * len(values))
    r.parity = Parity(passed, "tensor", "fp32", 1e-3, 1e-3) if status == "ok" and engine != "torch" else None
    return r


def report(*rows, sha="a" * 64, device="cpu", threads=4):
    base = report_v1(results=list(rows))
    config = base.setup.config
    config = replace(config, execution=replace(config.execution, device=device, threads=threads))
    return replace(base, setup=replace(base.setup, config=config),
                   model=replace(base.model, sha256=sha))


def normal(mean, seed, n=200):
    return np.random.default_rng(seed).normal(mean, 1.0, n).tolist()


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


def test_a_clearly_slower_sample_set_is_a_significant_regression():
    [c] = compare_runs(report(row("ort", samples=normal(100, 1))), report(row("ort", samples=normal(115, 2))), 0.10)
    assert c.regression.startswith("p50 +1") and c.note == ""
    low, high = c.ratio_ci
    assert 1.13 < low <= c.p50_change + 1 <= high < 1.17


def test_a_slower_median_within_the_noise_is_not_significant():
    [c] = compare_runs(report(row("ort", samples=NOISY_A)), report(row("ort", samples=NOISY_B)), 0.10)
    assert round(c.p50_change, 2) == 0.12  # beyond the threshold...
    assert c.ratio_ci[0] < 1 < c.ratio_ci[1]  # ...but the interval holds "no change"
    assert c.regression == "" and c.note == NOT_SIGNIFICANT


def test_the_interval_is_repeatable_and_an_improvement_is_never_a_regression():
    a, b = report(row("ort", samples=normal(115, 1))), report(row("ort", samples=normal(100, 2)))
    first, again = compare_runs(a, b, 0.1), compare_runs(a, b, 0.1)
    assert first[0].ratio_ci == again[0].ratio_ci and first[0].ratio_ci[1] < 1
    assert first[0].regression == "" and first[0].note == ""


def test_many_samples_are_subsampled_and_still_decided():
    [c] = compare_runs(report(row("ort", samples=normal(100, 1, n=6000))),
                       report(row("ort", samples=normal(112, 2, n=6000))), 0.10)
    assert c.regression and 1.11 < c.ratio_ci[0] < c.ratio_ci[1] < 1.13


def test_without_samples_on_one_side_the_threshold_alone_decides():
    old, new = row("ort", 5), row("ort", samples=[6.0] * 10)  # an older report against a new one
    [c] = compare_runs(report(old), report(new), 0.10)
    assert c.regression == "p50 +20.0%" and c.note == NO_SAMPLES and c.ratio_ci is None
    [c] = compare_runs(report(row("ort", 5)), report(row("ort", 5.2)), 0.10)
    assert c.regression == "" and c.note == NO_SAMPLES


def test_differences_name_the_model_device_threads_and_engine_versions():
    a = report(row("ort", 5, version="1.22.0"), row("tvm", 5, version="0.20"), row("openvino", 5, status="failed"))
    b = report(row("ort", 5, version="1.23.0"), row("tvm", 5, version="0.20"), row("openvino", 5, version="2025.1"),
               sha="b" * 64, device="cuda:0", threads=2)
    assert differences(a, b) == [
        "the runs differ in model sha256 (aaaaaaaaaaaa… vs bbbbbbbbbbbb…), device (cpu vs cuda:0), threads (4 vs 2)",
        "ort: engine version 1.22.0 vs 1.23.0"]  # openvino: a failed row that never said is no difference
    assert differences(a, a) == []


def test_cli_exits_1_on_a_significant_regression_and_prints_the_interval(tmp_path):
    result = _cli(tmp_path, report(row("ort", samples=normal(100, 1), version="1.22.0")),
                  report(row("ort", samples=normal(115, 2), version="1.23.0"), threads=2))
    assert result.exit_code == 1, result.output
    assert "warning: the runs differ in threads (4 vs 2)" in result.output
    assert "warning: ort: engine version 1.22.0 vs 1.23.0" in result.output
    c = compare_runs(*(Report.load(str(tmp_path / d / "report.json")) for d in "ab"), 0.10)[0]
    assert f"{c.p50_change:+.1%} [{c.ratio_ci[0] - 1:+.1%}, {c.ratio_ci[1] - 1:+.1%}]" in result.output


def test_cli_exits_0_when_not_significant(tmp_path):
    result = _cli(tmp_path, report(row("ort", samples=NOISY_A)), report(row("ort", samples=NOISY_B)))
    assert result.exit_code == 0, result.output
    assert "+12.0% [" in result.output and NOT_SIGNIFICANT in result.output
    assert "warning" not in result.output


def _cli(tmp_path, a, b):
    for name, r in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        r.save(str(tmp_path / name / "report.json"))
    return CliRunner().invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b")])


def interleaved(engine, values, reference):
    """A row of an interleaved run: its per-round medians beside the reference's."""
    from coordinator.run.round_stats import summarise

    r = row(engine, samples=values)
    r.rounds = summarise({"torch fp32": reference, engine: values}, "torch fp32", 0.02)[engine]
    return r


def test_interleaved_runs_compare_ratios_and_say_when_only_the_machine_moved():
    fast = [40.0 * (1 + 0.002 * k) for k in range(12)]
    slow = [60.0 * (1 + 0.002 * k) for k in range(12)]
    a = report(interleaved("ort", fast, slow))
    drifted = report(interleaved("ort", [x * 1.4 for x in fast], [x * 1.4 for x in slow]))  # every engine 40% slower
    [c] = compare_runs(a, drifted, 0.10)
    assert c.p50_change > 0.35 and abs(c.relative_change) < 0.01 and not c.regression
    assert "the machine drifted, not the engine" in c.note
    worse = report(interleaved("ort", [x * 1.3 for x in fast], slow))  # ort alone 30% slower
    [c] = compare_runs(a, worse, 0.10)
    assert c.relative_change > 0.25 and c.relative_ci[0] > 1 and "relative to torch" in c.regression

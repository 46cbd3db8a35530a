"""Sweep points (--scenario, --batch, --concurrency), their CLI checks, the auto growth, and the
merged sweep table and Pareto front."""
import pytest

from coordinator.config import BenchConfig
from coordinator.errors import UsageError
from coordinator.run.points import Point, grown, points
from coordinator.report.sweep import pareto


def test_points_cover_each_scenario_batch_and_concurrency_latency_first():
    got = points(["throughput", "latency"], [1, 4], ["2", "engine", "auto"])
    assert got[0] == Point("throughput", 1, "2")
    assert Point("latency", 4, "1") in got and Point("throughput", 4, "auto:1") in got
    assert len(got) == 2 * 3 + 2  # the latency scenario has one request in flight
    assert Point().label() == "" and Point("throughput", 4, "auto:2").folder() == "-throughput-b4-cauto2"
    assert [p.in_flight for p in (Point("throughput", 1, "engine"), Point("throughput", 1, "auto:8"))] == [0, 8]


def test_auto_doubles_while_samples_per_second_rise_by_five_percent():
    start = Point("throughput", 2, "auto:1")
    assert grown(start, 100.0, None) == Point("throughput", 2, "auto:2")
    assert grown(Point("throughput", 2, "auto:2"), 104.0, 100.0) is None  # +4%: stopped rising
    assert grown(Point("throughput", 2, "auto:2"), 110.0, 100.0) == Point("throughput", 2, "auto:4")
    assert grown(Point("throughput", 2, "2"), 500.0, 100.0) is None  # a fixed count does not grow
    assert grown(start, None, None) is None  # a failed row ends the search
    assert grown(Point("throughput", 1, "auto:64"), 1e9, 1.0) is None


@pytest.mark.parametrize("given, message", [
    ({"scenarios": ["offline"]}, "--scenario: unknown offline"),
    ({"batch": [0]}, "--batch: give batch sizes >= 1"),
    ({"concurrency": ["many"]}, "--concurrency: 'many' is not a count"),
    ({"concurrency": ["0"]}, "--concurrency: '0' is not a count"),
])
def test_bad_sweep_options_are_one_clear_error(given, message):
    with pytest.raises(UsageError, match=message):
        BenchConfig.of(model="resnet18", **given)


def test_comma_lists_from_the_command_line_become_typed_points():
    cfg = BenchConfig.from_dict({"model": "resnet18", "scenarios": "latency,throughput", "batch": "1,4,8",
                                 "concurrency": "1,auto"})
    points = cfg.points
    assert points.batch == [1, 4, 8] and points.scenarios == ["latency", "throughput"] and points.concurrency == ["1", "auto"]
    with pytest.raises(UsageError, match="batch"):
        BenchConfig.from_dict({"model": "resnet18", "batch": "1,four"})


def test_the_pareto_front_keeps_what_nothing_beats_on_both_axes():
    # (samples/s, p50 ms): the second has more throughput at the same latency as the first;
    # the fourth is slower and has less throughput than the third
    pts = [(100.0, 10.0), (150.0, 10.0), (300.0, 40.0), (250.0, 50.0), (50.0, 5.0)]
    assert pareto(pts) == [1, 2, 4]


def test_tune_searches_every_combination_of_the_declared_options_but_those_fixed():
    from coordinator.engines import discover
    from coordinator.run.tuning import candidates

    ov = discover()["openvino"]
    every = candidates(ov, {})
    assert len(every) == 2 * 3 and {"performance_hint": "THROUGHPUT", "num_streams": 2} in every
    fixed = candidates(ov, {"num_streams": 1})
    assert fixed == [{"num_streams": 1, "performance_hint": "LATENCY"}, {"num_streams": 1, "performance_hint": "THROUGHPUT"}]
    assert candidates(discover()["torch"], {}) == []  # nothing declared: no tuned row


def test_the_best_candidate_is_the_fastest_that_passed_parity():
    from coordinator.report.parity import Parity
    from coordinator.run.tuning import best
    from shared import Latency, RunResult
    from coordinator.report.document import Row

    def row(p50, passed=True, scenario="latency", per_s=None):
        r = Row(**vars(RunResult("ort", "ok", latency_ms=Latency.from_values([p50] * 3), scenario=scenario,
                                 throughput_per_s=per_s)))
        r.parity = Parity(passed, "tensor", "fp32", 1e-4, 1e-4, [])
        return r

    assert best([({"a": 1}, row(10.0)), ({"a": 2}, row(5.0, passed=False)), ({"a": 3}, row(8.0))]) == {"a": 3}
    assert best([({"a": 1}, row(10.0, scenario="throughput", per_s=50.0)),
                 ({"a": 2}, row(5.0, scenario="throughput", per_s=40.0))]) == {"a": 1}  # samples/s decides
    assert best([({"a": 1}, row(1.0, passed=False))]) is None

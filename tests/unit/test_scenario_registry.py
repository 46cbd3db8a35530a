"""A scenario is one module of shared/scenarios/: found by scanning the package, accepted by the
spec and the sweep from then on, and the measuring the runner base class hands the spec's to."""
import sys

import pytest

from coordinator.errors import UsageError
from coordinator.run.points import Point, check, points
from shared import Runner, RunSpec, save_samples, scenarios
from shared.spec import SCENARIOS
from shared.timing import timed_loop
from tests.fixtures.onnx_models import matmul_relu_samples

PAIRS = '''
from shared.scenarios import Scenario
from shared.timing import timed_loop


class Pairs(Scenario):
    name = "pairs"
    summary = "two calls a request"
    concurrent = True

    def loop(self, runner, samples, rule):
        return timed_loop(lambda x: (runner.infer_impl(x), runner.infer_impl(x)), samples, rule)

    def throughput_per_s(self, batch_size, latencies_ms, wall_s, mean_ms):
        return 2 * batch_size * 1e3 / mean_ms


SCENARIO = Pairs()
'''


def test_the_registry_is_the_package_and_the_spec_names_it():
    assert list(scenarios.REGISTRY) == ["latency", "throughput"] and SCENARIOS == ("latency", "throughput")
    assert not scenarios.get("latency").concurrent and scenarios.get("throughput").concurrent
    assert scenarios.get("throughput").hooks == ("submit_impl",)  # what OpenVINO overrides


def test_a_module_dropped_into_the_package_is_found(tmp_path, monkeypatch):
    (tmp_path / "pairs.py").write_text(PAIRS)
    (tmp_path / "helpers.py").write_text("X = 1\n")  # no SCENARIO: not a scenario
    monkeypatch.setattr(scenarios, "__path__", list(scenarios.__path__) + [str(tmp_path)])
    try:
        found = scenarios._scan()
    finally:
        for name in ("shared.scenarios.pairs", "shared.scenarios.helpers"):
            sys.modules.pop(name, None)
    assert sorted(found) == ["latency", "pairs", "throughput"] and found["pairs"].concurrent


class Numpy(Runner):
    calls = 0

    def version_impl(self):
        return "1"

    def load_impl(self):
        self.precision = "fp32"

    def infer_impl(self, feeds):
        Numpy.calls += 1
        return {"y": feeds["x"] @ feeds["x"].T}


@pytest.fixture
def pairs(tmp_path, monkeypatch):
    namespace = {}
    exec(PAIRS, namespace)
    monkeypatch.setitem(scenarios.REGISTRY, "pairs", namespace["SCENARIO"])
    samples = [{"x": s["x"]} for s in matmul_relu_samples()]
    save_samples(str(tmp_path / "inputs.npz"), samples)
    return str(tmp_path / "inputs.npz")


def test_a_registered_scenario_is_accepted_by_the_spec_the_sweep_and_the_runner(pairs):
    check(["pairs", "latency"], [1], ["2"])
    assert points(["pairs", "latency"], [1], ["2", "4"]) == [Point("pairs", 1, "2"), Point("pairs", 1, "4"),
                                                            Point("latency", 1, "1")]
    assert Point("pairs", 2, "4").label() == "pairs b2 c=4"
    with pytest.raises(UsageError, match="valid: latency, throughput, pairs"):
        check(["nope"], [1], ["1"])
    spec = RunSpec(engine="numpy", model_path="/unused.onnx", inputs_path=pairs, scenario="pairs", warmup=0,
                   iterations=5)
    Numpy.calls = 0
    result, _ = Numpy(spec).run()
    assert result.status == "ok", result.reason
    assert result.scenario == "pairs" and len(result.measurement.latencies_ms) == 5
    n = len(matmul_relu_samples())
    assert Numpy.calls == n + 2 * 5  # first call and warm-up over the inputs, then two calls a timed request
    assert result.throughput_per_s == pytest.approx(2 * 1e3 / result.latency_ms.mean)


def test_an_unknown_scenario_is_refused_where_it_is_read():
    with pytest.raises(ValueError, match="scenario must be one of latency, throughput"):
        RunSpec(engine="x", model_path="/m.onnx", inputs_path="/i.npz", scenario="offline")
    assert Point("offline", 1, "1").label() == "offline b1"  # a later report's point still has a label


def test_the_latency_loop_is_the_bare_timed_loop():
    assert scenarios.get("latency").loop.__code__.co_names == ("timed_loop", "infer_impl")
    assert timed_loop.__module__ == "shared.timing"


def test_what_the_report_reads_is_declared_by_each_scenario():
    latency, throughput = scenarios.get("latency"), scenarios.get("throughput")
    assert latency.ranked and not latency.priced  # the verdict's point: batch 1, one request at a time
    assert throughput.priced and not throughput.ranked  # --price-per-hour's samples/s
    assert latency.point_label(4, "1") == "latency b4" and throughput.point_label(4, "2") == "throughput b4 c=2"
    assert scenarios.declared("throughput") is throughput


def test_a_name_no_longer_registered_is_read_as_a_bare_scenario():
    offline = scenarios.declared("offline")  # a report from a version that had it
    assert offline.name == "offline" and not offline.ranked and not offline.priced and not offline.concurrent
    assert offline.point_label(2, "4") == "offline b2" and "offline" not in scenarios.REGISTRY

"""Session mode through a real runner process: loaded once, timed in slices on the inputs
asked, idle between them, then its result as a one-shot run writes it."""
import sys
import time
from pathlib import Path

import pytest

from coordinator.engines import Engine
from coordinator.launchers.process import protocol_path, start_session
from coordinator.launchers.session import SessionTimeout
from coordinator.run.interleave import Plan, Slot, run_rounds
from shared import RunSpec, save_samples
from tests.fixtures.onnx_models import matmul_relu_samples

ENGINE = Engine(id="numpy", name="numpy", folder=Path(__file__).parents[1] / "fixtures" / "numpy_engine",
                devices=("cpu",), precisions=("fp32",), environments=("host",))


def start(tmp_path, name="io", timeout=60.0, **options):
    save_samples(str(tmp_path / "inputs.npz"), matmul_relu_samples())
    spec = RunSpec(engine="numpy", model_path=str(tmp_path / "unused.onnx"), inputs_path=str(tmp_path / "inputs.npz"),
                   warmup=1, threads=1, engine_options=options)
    return start_session(sys.executable, ENGINE, spec, tmp_path / name, timeout, [protocol_path(tmp_path / "cache")])


def test_a_session_times_the_slices_asked_then_writes_its_result(tmp_path):
    session = start(tmp_path)
    try:
        ready = session.ready()
        assert ready is not None and ready["event"] == "ready" and ready["per_call_ms"] > 0
        n = len(matmul_relu_samples())
        reply = session.time(5, start=1)
        assert len(reply["latencies_ms"]) == 5 and reply["input_index"] == [(1 + i) % n for i in range(5)]
        time.sleep(0.3)  # idle: a waiting runner uses no CPU
        reply = session.time(3, start=0, repeat=True)
        assert reply["input_index"] == [0, 0, 0]
        assert reply["waited_s"] >= 0.3 and reply["waiting_cpu_s"] < 0.05 * reply["waited_s"]
        assert reply["settle_ms"] >= 0
    finally:
        result = session.finish("converged")
    assert result.status == "ok", result.reason
    # the row's figures are its slices' calls; the audit's repeated slice is not among them
    assert result.latency_ms.count == 5 and result.measurement.stop == "converged"


def test_a_runner_that_fails_to_load_ends_the_session_with_its_result(tmp_path):
    session = start(tmp_path, fail_in="compile")
    assert session.ready() is None
    result = session.finish("")
    assert (result.status, result.stage) == ("failed", "compile") and "compiler exploded" in result.reason


def test_a_runner_that_hangs_is_given_up(tmp_path):
    session = start(tmp_path, timeout=2.0, fail_in="hang")
    with pytest.raises(SessionTimeout):
        session._receive(1.0)
    session.kill()
    assert not session.alive()  # killed with its process group


def test_two_runners_in_rounds_have_paired_figures(tmp_path):
    sessions = [start(tmp_path, name=f"io{k}") for k in range(2)]
    slots = [Slot(f"numpy{k}", s, float(s.ready()["per_call_ms"])) for k, s in enumerate(sessions)]
    try:
        figures = run_rounds(slots, Plan(inputs=len(matmul_relu_samples()), slice_s=0.05, budget_s=3.0,
                                         reference="numpy0"))
    finally:
        results = [s.finish(figures["numpy0"].stop if "figures" in dir() else "budget") for s in sessions]
    assert all(r.status == "ok" for r in results)
    a, b = figures["numpy0"], figures["numpy1"]
    assert len(a.round_p50_ms) == len(b.round_p50_ms) >= 2  # one slice each per round (+ the audit round)
    assert a.vs_reference.value == 1.0 and b.vs_reference is not None and b.stop in ("converged", "budget")
    assert b.repeated_over_rotated is not None  # the caching audit ran
    assert a.waiting_cpu_percent < 20  # a waiting numpy runner does not spin


def test_a_throughput_slice_keeps_its_requests_in_flight(tmp_path):
    save_samples(str(tmp_path / "inputs.npz"), matmul_relu_samples())
    spec = RunSpec(engine="numpy", model_path=str(tmp_path / "unused.onnx"), inputs_path=str(tmp_path / "inputs.npz"),
                   warmup=1, threads=2, scenario="throughput", concurrency=2)
    session = start_session(sys.executable, ENGINE, spec, tmp_path / "io", 60, [protocol_path(tmp_path / "cache")])
    try:
        assert session.ready() is not None
        reply = session.time(20, start=0)
        assert len(reply["latencies_ms"]) == 20
    finally:
        result = session.finish("count")
    assert result.status == "ok", result.reason
    assert result.concurrency == 2 and result.throughput_per_s > 0 and result.latency_ms.count == 20

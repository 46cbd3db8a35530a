"""The scenarios of the runner base class: batch B (stacked inputs, outputs split back) and the
throughput scenario (N requests in flight through submit_impl), on the numpy test engine."""
import threading
import time

import numpy as np
import pytest

from shared import ProtocolError, RunSpec, save_samples
from shared.batching import batched, unbatched
from shared.timing import StopRule, concurrent_loop
from tests.fixtures.onnx_models import matmul_relu_reference, matmul_relu_samples
from tests.unit.test_runner import load_runner_class, make_spec


@pytest.fixture
def three(tmp_path):
    """Three inputs: a batch of 2 needs the first again to fill its second batch."""
    samples = matmul_relu_samples() + [{"x": np.full((2, 4), 0.5, np.float32)}]
    path = tmp_path / "inputs.npz"
    save_samples(str(path), samples)
    return path, samples


def test_batches_stack_inputs_in_turn_and_split_back_in_order(three):
    _, samples = three
    stacked = batched(samples, 2)
    assert [b["x"].shape for b in stacked] == [(4, 4), (4, 4)]
    np.testing.assert_array_equal(stacked[1]["x"][2:], samples[0]["x"])  # cycled to fill the batch
    back = unbatched([{"y": b["x"] * 2} for b in stacked], samples, 2)
    assert len(back) == 3
    for s, o in zip(samples, back):
        np.testing.assert_array_equal(o["y"], s["x"] * 2)


def test_a_batch_needs_one_shape_and_outputs_with_a_batch_axis():
    samples = [{"x": np.zeros((1, 4), np.float32)}, {"x": np.zeros((1, 5), np.float32)}]
    with pytest.raises(ProtocolError, match="one shape beyond axis 0"):
        batched(samples, 2)
    with pytest.raises(ProtocolError, match="no batch axis"):
        unbatched([{"count": np.zeros((), np.int64)}], samples[:1], 2)


@pytest.mark.parametrize("scenario", ["latency", "throughput"])
def test_a_batched_point_gives_each_input_its_own_output_and_counts_samples(three, scenario):
    path, samples = three
    result, outputs = load_runner_class()(make_spec(path, batch_size=2, iterations=6, scenario=scenario,
                                                    concurrency=2 if scenario == "throughput" else 1)).run()
    assert result.status == "ok", result.reason
    assert (result.scenario, result.batch_size) == (scenario, 2)
    assert len(outputs) == 3
    for s, o in zip(samples, outputs):
        np.testing.assert_allclose(o["y"], matmul_relu_reference(s), rtol=1e-6)
    calls_per_s = result.latency_ms.count / result.measurement.timed_s
    assert result.throughput_per_s > 1.5 * calls_per_s  # two samples a call, not one


class Sleeper:
    """A call that waits without holding the GIL, as an engine's kernels do: 20 ms each."""

    def infer_impl(self, feeds):
        time.sleep(0.02)
        return super().infer_impl(feeds)


def test_throughput_keeps_the_requests_in_flight_and_says_how_many_overlapped(three):
    path, _ = three
    runner = type("SleepyRunner", (Sleeper, load_runner_class()), {})
    one, _ = runner(make_spec(path, iterations=20)).run()
    four, outputs = runner(make_spec(path, iterations=40, scenario="throughput", concurrency=4, threads=4)).run()
    assert one.status == four.status == "ok", four.reason
    assert four.concurrency == 4 and four.settings["requests_in_flight"] == 4
    assert four.settings["threads_per_request"] == 1 and four.settings["threads_budget"] == 4
    assert 3.0 < four.achieved_concurrency <= 4.05
    assert one.achieved_concurrency <= 1.0
    assert four.throughput_per_s > 2.5 * one.throughput_per_s
    assert four.latency_ms.p50 >= 20 and len(outputs) == 3


def test_concurrency_zero_is_the_engines_choice_one_request_per_thread(three):
    path, _ = three
    result, _ = load_runner_class()(make_spec(path, scenario="throughput", concurrency=0, threads=3)).run()
    assert result.status == "ok", result.reason
    assert result.concurrency == 3 and result.settings["threads_per_request"] == 1


def test_a_runner_whose_calls_cannot_overlap_runs_one_request_with_the_whole_budget(three):
    path, _ = three
    serial = type("Serial", (load_runner_class(),), {"concurrent": False})
    result, _ = serial(make_spec(path, scenario="throughput", concurrency=4, threads=2, iterations=5)).run()
    assert result.status == "ok", result.reason
    assert result.concurrency == 1 and result.settings["threads_per_request"] == 2
    assert "cannot overlap" in result.settings["one_request_in_flight"]


def test_an_engine_error_in_a_request_fails_the_run_stage(three):
    path, _ = three

    class Broken(load_runner_class()):
        calls = 0

        def infer_impl(self, feeds):
            self.calls += 1
            if self.calls > 4:
                raise RuntimeError("kernel exploded")
            return super().infer_impl(feeds)

    result, _ = Broken(make_spec(path, scenario="throughput", concurrency=2, iterations=20)).run()
    assert result.status == "failed" and result.stage == "run" and "kernel exploded" in result.reason


def test_the_loop_never_has_more_requests_in_flight_than_asked():
    in_flight, most, lock = [0], [0], threading.Lock()

    def submit(x, done):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])

        def end():
            time.sleep(0.005)
            with lock:
                in_flight[0] -= 1
            done(x, None)
        threading.Thread(target=end).start()

    loop = concurrent_loop(submit, [1, 2, 3], StopRule(30), in_flight=3)
    assert len(loop.latencies_ms) == 30 and loop.stop == "count" and in_flight[0] == 0
    assert most[0] == 3 and sorted(loop.input_index) == sorted([i % 3 for i in range(30)])


@pytest.mark.parametrize("bad, message", [
    ({"scenario": "offline"}, "scenario must be one of latency, throughput"),
    ({"concurrency": 2}, "1 in the latency scenario"),
    ({"scenario": "throughput", "concurrency": -1}, "concurrency must be >= 0"),
])
def test_the_spec_refuses_a_bad_scenario(bad, message):
    with pytest.raises(ValueError, match=message):
        RunSpec(engine="ort", model_path="m", inputs_path="i", **bad)

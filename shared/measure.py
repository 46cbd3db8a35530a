"""The run stage of `Runner.run()`: the first inference, the warm-up, the timed loops and the row.

first inference  timed alone, through the scenario's one-call path
warm-up          the other inputs (their outputs kept for parity), then more calls up to `warmup`
                 calls or `warmup_time_s` seconds, all instrumented where a hook offers phases
                 (the later half gives the breakdown); then the scenario's own (`Scenario.warm`)
timed            `repeats` loops of the scenario (`Scenario.loop`), or in session mode the slices
                 the coordinator asks for (shared/session.py), inside a resource window with the
                 garbage collector quiet; nothing but the engine's call between two clock reads
"""
import time
from typing import Any, List, NamedTuple, Optional, Tuple

from . import faults, session
from .batching import unbatched
from .errors import ProtocolError
from .monitor import ResourceWindow
from .records import write_json_atomic
from .result import NOT_READ_BACK, Latency, Measurement, Resources, RunResult
from .rss import peak_rss_mb, reset_peak_rss, resets_peak_rss
from .scenarios import Scenario
from .spec import RunSpec
from .tensors import Sample
from .timing import GC_POLICY, StopRule, quiet_gc


class Warm(NamedTuple):
    first_ms: float
    outputs: List[Sample]  # the parity outputs, one per sample
    calls: int
    seconds: float


class Timed(NamedTuple):
    latencies_ms: List[float]
    input_index: List[int]
    repeat_p50_ms: List[float]
    stops: List[str]
    wall_s: float
    slices: Optional[session.Slices]  # session mode's


def measure(runner: Any, scenario: Scenario, samples: List[Sample], inputs: List[Sample]) -> Tuple[RunResult, List[Sample]]:
    """The row of a runner whose model is loaded, and its outputs for parity: one per test input
    (`inputs`, as read; `samples` are them batched)."""
    spec = runner.spec
    load_peak = peak_rss_mb()
    warm = _warm_up(runner, scenario, samples)
    per_call_ms = warm.seconds * 1e3 / warm.calls if warm.calls else warm.first_ms
    _progress(runner, "timed", warm.first_ms, _timed_estimate(spec, per_call_ms / runner.in_flight))
    peak_before = peak_rss_mb()  # load, compile and warm-up
    reset_peak_rss()
    with ResourceWindow(spec.device_index if spec.device != "cpu" else None) as window, quiet_gc():
        timed = _timed(runner, scenario, samples, per_call_ms)
    latency = Latency.from_values(timed.latencies_ms, timed.input_index)
    runner.settings.update(scenario.settings(runner))
    resources = window.resources()
    wall = timed.wall_s
    faults = window.minor_faults
    if timed.slices is not None:  # busy while timed, not while waiting for its next slice
        resources.cpu_util_percent = 100.0 * timed.slices.cpu_s / wall if wall > 0 else 0.0
        faults = timed.slices.minor_faults
    resources.page_faults_per_call = faults / len(timed.latencies_ms) if timed.latencies_ms else None
    resources.peak_rss_mb = max(resources.peak_rss_mb, peak_before)  # the whole process
    resources.load_peak_rss_mb = load_peak
    resources.steady_peak_rss_mb = peak_rss_mb() if resets_peak_rss() else None
    result = _row(runner, scenario, warm, timed, latency, window.wall_seconds, resources)
    outputs = unbatched(warm.outputs, inputs, spec.batch_size)
    return result, outputs if spec.save_outputs else []


def _warm_up(runner: Any, scenario: Scenario, samples: List[Sample]) -> Warm:
    """The first inference, then the warm-up. The rest of the inputs come first, their outputs
    kept for parity, so no call is spent twice."""
    spec, fault, n = runner.spec, runner.spec.fault, len(samples)
    start = time.perf_counter()
    raw = scenario.call(runner, samples[0])
    first_ms = (time.perf_counter() - start) * 1e3
    outputs = [faults.outputs(fault, _checked(runner.outputs_impl(raw)))]
    raw = None
    _progress(runner, "warm-up", first_ms, first_ms / 1e3 * (max(spec.warmup, n - 1)) + _timed_estimate(spec, first_ms))
    calls, warm_start = 0, time.perf_counter()
    runner.instrument_impl(True)
    try:
        while calls < n - 1 or (calls < spec.warmup and time.perf_counter() - warm_start < spec.warmup_time_s):
            calls += 1
            raw = scenario.call(runner, samples[calls % n])
            if calls < n:
                outputs.append(faults.outputs(fault, _checked(runner.outputs_impl(raw))))
            raw = None
    finally:
        runner.instrument_impl(False)
    calls += scenario.warm(runner, samples)
    return Warm(first_ms, outputs, calls, time.perf_counter() - warm_start)


def _timed(runner: Any, scenario: Scenario, samples: List[Sample], per_call_ms: float) -> Timed:
    """The timed loops, or in session mode the slices the coordinator asks for."""
    spec = runner.spec

    def loop(order: Any, rule: StopRule) -> Any:
        return scenario.loop(runner, order, rule)

    if runner.channel is not None:  # session mode: slices when the coordinator says
        slices = session.serve(runner.channel, loop, samples, per_call_ms)
        return Timed(slices.latencies_ms, slices.input_index, [], [slices.stop], slices.wall_s, slices)
    rule = StopRule(spec.iterations, spec.min_iterations, spec.min_time_s, spec.target_ci, spec.max_time_s)
    latencies, indices, medians, stops = [], [], [], []  # type: List[float], List[int], List[float], List[str]
    wall = 0.0
    for _ in range(spec.repeats):
        timed = loop(samples, rule)
        latencies += timed.latencies_ms
        indices += timed.input_index
        medians.append(Latency.from_values(timed.latencies_ms).p50)
        stops.append(timed.stop)
        wall += timed.wall_s
    return Timed(latencies, indices, medians, stops, wall, None)


def _row(runner: Any, scenario: Scenario, warm: Warm, timed: Timed, latency: Latency, window_s: float,
         resources: Resources) -> RunResult:
    """The row's result."""
    spec, latencies, indices, wall = runner.spec, timed.latencies_ms, timed.input_index, timed.wall_s
    return RunResult(
        engine=spec.engine, status="ok", settings=runner.settings,
        precision=runner.precision if runner.precision is not None else NOT_READ_BACK,
        precision_detail=runner.precision_detail, first_inference_ms=warm.first_ms, latency_ms=latency,
        per_input_ms={str(i): Latency.from_values([x for x, k in zip(latencies, indices) if k == i])
                      for i in sorted(set(indices))},
        measurement=Measurement(
            stop=_worst(timed.stops), target_ci=None if spec.iterations else spec.target_ci, warmup_calls=warm.calls,
            warmup_s=warm.seconds, timed_s=wall if timed.slices is not None else window_s, gc=GC_POLICY,
            latencies_ms=[round(x, 6) for x in latencies], input_index=indices),
        repeat_p50_ms=timed.repeat_p50_ms if spec.repeats > 1 else [],
        breakdown_ms={k: Latency.from_values(v[len(v) // 2:]).p50 for k, v in runner.phase_ms.items() if v},
        throughput_per_s=scenario.throughput_per_s(spec.batch_size, latencies, wall, latency.mean),
        scenario=spec.scenario, batch_size=spec.batch_size, concurrency=runner.in_flight,
        achieved_concurrency=sum(latencies) / 1e3 / wall if wall > 0 else None, resources=resources,
    )


def _timed_estimate(spec: RunSpec, per_call_ms: float) -> float:
    """Seconds the timed loops will take, from a call's latency: the planned calls, at least the
    minimum time, at most the budget (a loop that has not converged by then)."""
    calls = spec.iterations or spec.min_iterations
    one = max(calls * per_call_ms / 1e3, spec.min_time_s)
    return spec.repeats * (one if spec.iterations else min(one, spec.max_time_s))


def _progress(runner: Any, phase: str, first_ms: float, eta_s: float) -> None:
    """A note for the coordinator's progress display (never written inside a timed loop)."""
    if runner.progress_file:
        write_json_atomic(runner.progress_file, {"phase": phase, "first_inference_ms": first_ms,
                                                 "eta_s": eta_s, "at": time.time()})


def _worst(stops: List[str]) -> str:
    """One stop reason for several repeats: budget if any loop ran out of time."""
    return "budget" if "budget" in stops else stops[0]


def _checked(outputs: Any) -> Sample:
    import numpy as np

    if not isinstance(outputs, dict) or not all(isinstance(v, np.ndarray) for v in outputs.values()):
        raise ProtocolError("infer_impl (through outputs_impl) must give a dict of name -> numpy array")
    return outputs

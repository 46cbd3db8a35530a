"""latency: one request at a time, back to back (MLPerf's SingleStream).

The loop calls `infer_impl` and nothing else between two clock reads (shared.timing.timed_loop);
samples/s follow from the mean call.
"""
from typing import Any, List

from ..tensors import Sample
from ..timing import Loop, StopRule, timed_loop
from . import Scenario


class OneAtATime(Scenario):
    name = "latency"
    summary = "one request at a time"
    ranked = True  # the verdict's point: batch 1, one request at a time

    def loop(self, runner: Any, samples: List[Sample], rule: StopRule) -> Loop:
        return timed_loop(runner.infer_impl, samples, rule)

    def throughput_per_s(self, batch_size: int, latencies_ms: List[float], wall_s: float, mean_ms: float) -> float:
        return batch_size * (1e3 / mean_ms)  # calls back to back: samples/s from the mean call


SCENARIO = OneAtATime()

"""The timed loop. Kept bare on purpose: the only work between two clock reads is the call."""
import time
from typing import Callable, List, Sequence, TypeVar

T = TypeVar("T")


def measure(call: Callable[[T], object], inputs: Sequence[T], iterations: int,
            min_time_s: float = 0.0) -> List[float]:
    """Call `call` on the inputs in turn until both `iterations` calls and `min_time_s`
    seconds are reached. Returns per-call latencies in milliseconds (monotonic clock)."""
    clock = time.perf_counter
    n = len(inputs)
    latencies = []  # type: List[float]
    append = latencies.append
    i = 0
    deadline = clock() + min_time_s
    while True:
        x = inputs[i % n]
        t0 = clock()
        call(x)
        t1 = clock()
        append((t1 - t0) * 1e3)
        i += 1
        if i >= iterations and t1 >= deadline:
            return latencies

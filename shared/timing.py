"""The timed loops. Kept bare on purpose: the only work between two clock reads is the call.

`timed_loop` makes one call at a time (the latency scenario); `concurrent_loop` keeps N requests
in flight through a runner's submit hook (the throughput scenario). Either stops by itself (`until_known`): after a minimum count and time, once the median is known
to +-target (the distribution-free 95% interval of `shared.stats`), or when the row's time
budget is spent; or after a fixed count (`fixed`), as `--iterations` asks.
"""
import gc
import threading
import time
from typing import Any, Callable, List, NamedTuple, Optional, Sequence, TypeVar

from .stats import relative_halfwidth

T = TypeVar("T")

GC_POLICY = "collected, frozen and disabled during the timed loops"


class Loop(NamedTuple):
    latencies_ms: List[float]
    input_index: List[int]
    stop: str  # converged, budget or count
    wall_s: float = 0.0  # from the first call's start to the last one's end


class StopRule(NamedTuple):
    iterations: Optional[int]  # a fixed count; None: until the median is known
    min_iterations: int = 10
    min_time_s: float = 0.0
    target_ci: float = 0.01
    max_time_s: float = float("inf")


def measure(call: Callable[[T], object], inputs: Sequence[T], iterations: int,
            min_time_s: float = 0.0) -> List[float]:
    """A fixed loop: `iterations` calls and at least `min_time_s` seconds. Milliseconds."""
    return timed_loop(call, inputs, StopRule(iterations, min_time_s=min_time_s)).latencies_ms


def timed_loop(call: Callable[[T], object], inputs: Sequence[T], rule: StopRule) -> Loop:
    """Call `call` on the inputs in turn until `rule` says stop. Each call's output is
    released after the clock stops, so freeing it is not timed."""
    clock = time.perf_counter
    n = len(inputs)
    latencies = []  # type: List[float]
    append = latencies.append
    fixed = rule.iterations is not None
    enough = rule.iterations if fixed else rule.min_iterations
    i, check = 0, max(enough, 1)  # type: int, int
    start = clock()
    min_end, budget_end = start + rule.min_time_s, start + rule.max_time_s
    stop = ""
    while not stop:
        x = inputs[i % n]
        t0 = clock()
        out = call(x)
        t1 = clock()
        out = None  # noqa: F841 (the output is freed here, outside the timed region)
        append((t1 - t0) * 1e3)
        i += 1
        if not fixed and t1 >= budget_end:
            stop = "budget"
        elif i >= check and t1 >= min_end:
            if fixed:
                stop = "count"
            elif relative_halfwidth(latencies, [k % n for k in range(i)]) <= rule.target_ci:
                stop = "converged"
            else:  # not after every call: look again after 10% more calls
                check = i + max(1, i // 10)
    return Loop(latencies, [k % n for k in range(i)], stop, clock() - start)


# submit(feeds, done): start one inference, return at once; done(raw, error) when it ends
Submit = Callable[[Any, Callable[[Any, Optional[BaseException]], None]], None]


def concurrent_loop(submit: Submit, inputs: Sequence[Any], rule: StopRule, in_flight: int) -> Loop:
    """Keep `in_flight` requests going (a closed loop: a new one starts as soon as one ends, as
    benchmark_app's async mode and perf_analyzer's concurrency do) until `rule` says stop, then
    wait for the last. Each request's latency runs from its submission to its completion
    callback; `wall_s` includes the drain, so samples/s = calls x batch / wall_s. The stopping
    rule is checked on the main thread, between submissions, on the calls finished so far."""
    clock = time.perf_counter
    n = len(inputs)
    free = threading.Semaphore(in_flight)
    lock = threading.Lock()
    latencies, index = [], []  # type: List[float], List[int]
    errors = []  # type: List[BaseException]

    def finisher(i: int, t0: float) -> Callable[[Any, Optional[BaseException]], None]:
        def done(raw: Any, error: Optional[BaseException]) -> None:
            t1 = clock()
            with lock:
                latencies.append((t1 - t0) * 1e3)
                index.append(i % n)
                if error is not None:
                    errors.append(error)
            free.release()
        return done

    fixed = rule.iterations is not None
    enough = rule.iterations if fixed else rule.min_iterations
    i, check, stop = 0, max(enough, 1), ""  # type: int, int, str
    start = clock()
    min_end, budget_end = start + rule.min_time_s, start + rule.max_time_s
    while not stop:
        free.acquire()
        now = clock()
        if errors:
            free.release()
            break
        with lock:
            done_count = len(latencies)
        if fixed:
            stop = "count" if i >= check and now >= min_end else ""
        elif now >= budget_end:
            stop = "budget"
        elif done_count >= check and now >= min_end:
            with lock:
                values, groups = list(latencies), list(index)
            if relative_halfwidth(values, groups) <= rule.target_ci:
                stop = "converged"
            else:
                check = done_count + max(1, done_count // 10)
        if stop:
            free.release()
            break
        t0 = clock()
        submit(inputs[i % n], finisher(i, t0))
        i += 1
    for _ in range(in_flight):  # the drain: every request in flight has ended
        free.acquire()
    wall = clock() - start
    if errors:
        raise errors[0]
    return Loop(latencies, index, stop, wall)


class quiet_gc:
    """Collect, freeze and disable Python's garbage collector for the timed loops, so a
    collection of the runner's own objects never lands inside a timed call."""

    def __enter__(self) -> "quiet_gc":
        self._enabled = gc.isenabled()
        gc.collect()
        if hasattr(gc, "freeze"):  # Python >= 3.7: what survives is never scanned again
            gc.freeze()
        gc.disable()
        return self

    def __exit__(self, *exc: object) -> None:
        if hasattr(gc, "unfreeze"):
            gc.unfreeze()
        if self._enabled:
            gc.enable()

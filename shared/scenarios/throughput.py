"""throughput: requests kept in flight, the engine kept busy (as MLPerf's Offline aims); samples/s.

`in_flight` requests go through the runner's `submit_impl` (shared.timing.concurrent_loop): the
engine's own async API where a runner overrides it (OpenVINO's AsyncInferQueue, its count read
back from the plugin in `load_impl`), else worker threads calling `infer_impl` (below). The
thread budget is split among the requests (`threads_per_request`). A runner whose calls cannot
overlap (`concurrent = False`) runs one request in flight with the whole budget, and the row
says so. Samples/s are the calls finished over the loops' wall time, the drain included.
"""
import threading
from typing import Any, Callable, Dict, List, Optional

from ..tensors import Sample
from ..timing import Loop, StopRule, concurrent_loop
from . import Scenario

Done = Callable[[Any, Optional[BaseException]], None]


class InFlight(Scenario):
    name = "throughput"
    summary = "requests in flight, samples/s"
    concurrent = True
    hooks = ("submit_impl",)
    priced = True  # --price-per-hour: the cost of 1,000 inferences at its samples/s

    def setup(self, runner: Any) -> None:
        spec = runner.spec
        if runner.concurrent:
            runner.in_flight = spec.concurrency or spec.threads
            runner.threads_per_request = max(1, spec.threads // runner.in_flight)
        else:
            runner.settings["one_request_in_flight"] = "this runner's engine calls cannot overlap"

    def call(self, runner: Any, feeds: Sample) -> Any:
        # through the engine's async path, so its outputs are the ones checked
        return submit_and_wait(runner.submit_impl, feeds)

    def warm(self, runner: Any, samples: List[Sample]) -> int:
        # every request slot (stream, worker thread) started once before timing
        return len(concurrent_loop(runner.submit_impl, samples, StopRule(2 * runner.in_flight), runner.in_flight)[0])

    def loop(self, runner: Any, samples: List[Sample], rule: StopRule) -> Loop:
        return concurrent_loop(runner.submit_impl, samples, rule, runner.in_flight)

    def settings(self, runner: Any) -> Dict[str, Any]:
        # the fair-accounting record: the budget every engine shares, and its split
        return dict(requests_in_flight=runner.in_flight, threads_budget=runner.spec.threads,
                    threads_per_request=runner.threads_per_request)

    def throughput_per_s(self, batch_size: int, latencies_ms: List[float], wall_s: float, mean_ms: float) -> float:
        return batch_size * (len(latencies_ms) / wall_s)  # the drain of the last requests included


def submit_and_wait(submit: Callable[[Sample, Done], None], feeds: Sample) -> Any:
    """One request through `submit`, waited for: its raw outputs."""
    ended = threading.Event()
    box = []  # type: List[Any]

    def done(raw: Any, error: Optional[BaseException]) -> None:
        box.append((raw, error))
        ended.set()

    submit(feeds, done)
    ended.wait()
    raw, error = box[0]
    if error is not None:
        raise error
    return raw


def worker_pool(in_flight: int, initializer: Callable[[], None]) -> Any:
    """The default `submit_impl`'s threads: one per request in flight."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(in_flight, thread_name_prefix="e2e-request", initializer=initializer)


def submit_to(workers: Any, infer: Callable[[Sample], Any], feeds: Sample, done: Done) -> None:
    """Start `infer(feeds)` on a worker thread; `done(raw, error)` when it ends."""
    def finished(future: Any) -> None:
        error = future.exception()
        done(None if error else future.result(), error)

    workers.submit(infer, feeds).add_done_callback(finished)


SCENARIO = InFlight()

"""The runner base class: it owns the lifecycle and the measuring, an engine writes hooks.

Lifecycle of `Runner.run()`:
  setup    check the spec's device kind and precision against the runner's manifest.yaml (no
           runner checks them again), check the engine is usable here, read its version, read
           the inputs
  load     `load_impl()`: read / convert / compile the model (hooks may time sub-stages with
           `self.stage("convert")` and `self.stage("compile")`; a tool's conversion kept in the
           cache with its log is `convert_cached`) and set `self.precision` from what the engine
           reports (an ok row whose runner did not says NOT_READ_BACK)
  run      first inference (timed alone); warm-up: the other inputs (outputs kept for
           parity) and more calls up to `warmup` in all, the later half instrumented where a
           hook offers phases; then `repeats` timed loops over the inputs in turn
  release  `release_impl()`, always

The scenario (`spec.scenario`, one module in shared/scenarios/) decides what a timed loop does:
`latency` calls `infer_impl` once at a time; `throughput` keeps `in_flight` requests going
through `submit_impl` (the engine's own async API, or by default worker threads calling
`infer_impl`), with the thread budget split among them (`threads_per_request`). The run stage
itself is shared/measure.py; caches are shared/caching.py's; stages are timed by shared/stages.py. With `spec.batch_size` B > 1 the samples are
the test inputs stacked B at a time (shared.batching), and the outputs are split back per input
for parity.

A hook raises `UnsupportedError` when the engine cannot handle the model and
`EngineUnavailable` when it cannot run here; anything else is a failure of the stage it was
raised in. Timing wraps `infer_impl` only: host->device and device->host copies belong in it
(the copy policy is "inside" for every engine).
"""
import dataclasses
import sys
from typing import Any, Callable, ContextManager, Dict, List, Optional, Tuple

from . import faults, scenarios, session
from .batching import batched
from .caching import Converted, ModelCache
from .environment import describe
from .errors import E2EError, ProtocolError
from .manifest import check_declared
from .measure import measure
from .result import RunResult
from .scenarios.throughput import submit_to, worker_pool
from .spec import RunSpec
from .stages import StageClock
from .tensors import Sample, load_samples

__all__ = ["Converted", "NoOptions", "Runner", "find_runner_class"]


@dataclasses.dataclass
class NoOptions:
    """Engine options of a runner that takes none."""


class Runner(ModelCache):
    #: distributions whose versions go into the result's environment record
    packages: List[str] = []
    #: dataclass validating `spec.engine_options` (unknown keys and bad values are errors)
    Options: Any = NoOptions
    #: whether requests may overlap in the throughput scenario: `infer_impl` is safe on several
    #: threads at once (and releases the GIL), or the runner has its own `submit_impl`. A runner
    #: that says no runs one request in flight there, with the whole budget, and the row says so.
    concurrent = False

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        #: the spec's scenario (shared/scenarios/): what the timed loop does
        self.scenario = scenarios.get(spec.scenario)
        self.options: Any = None
        #: what the engine actually ran at: a hook sets it from what the engine reports (or, where
        #: it cannot report it, says in a comment why it is known). Unknown until then: an ok row
        #: whose runner never set it says NOT_READ_BACK, not the precision asked.
        self.precision = None  # type: Optional[str]
        #: effective settings read back from the engine (threads, providers, hints...)
        self.settings: Dict[str, Any] = {}
        #: the per-op / per-layer mix behind `precision`, as the engine reports it
        self.precision_detail: Dict[str, Any] = {}
        #: the input samples, read before `load_impl` (shape specialisation, profiles); batched
        #: B at a time with `spec.batch_size` B > 1
        self.samples: List[Sample] = []
        #: throughput scenario: requests kept in flight, and each one's share of the thread
        #: budget; set before `load_impl` (by the scenario), which may change them
        self.in_flight = 1
        self.threads_per_request = spec.threads
        self._workers: Any = None  # the default submit_impl's thread pool
        self._inputs: List[Sample] = []  # the test inputs as read (batch 1)
        #: phase -> ms per instrumented call (see `instrument_impl`)
        self.phase_ms: Dict[str, List[float]] = {}
        self._clock = StageClock()
        #: where the current stage's name is written, so a crash can still be attributed
        self.stage_file: Optional[str] = None
        #: where the runner says how far it is and its estimate of the time left (JSON)
        self.progress_file: Optional[str] = None
        #: session mode (shared/session.py): the coordinator's control channel
        self.channel: Optional[session.RunnerChannel] = None

    # -- hooks --------------------------------------------------------------------------
    def available_impl(self) -> None:
        """Raise EngineUnavailable (with what to do about it) if the engine cannot run here."""

    def version_impl(self) -> str:
        raise NotImplementedError

    def load_impl(self) -> None:
        raise NotImplementedError

    def infer_impl(self, feeds: Sample) -> Any:
        """One inference from host arrays to host arrays the caller may keep (copies): a dict
        of ONNX output name -> array, or whatever `outputs_impl` turns into one. This call is
        the timed region."""
        raise NotImplementedError

    def outputs_impl(self, raw: Any) -> Sample:
        """Optional: `infer_impl`'s result as name -> array. Done outside the timed region, so
        an engine that returns a list pays no bookkeeping inside it."""
        return raw

    def release_impl(self) -> None:
        """Free the engine's resources."""

    def submit_impl(self, feeds: Sample, done: Callable[[Any, Optional[BaseException]], None]) -> None:
        """Throughput scenario: start one inference and return at once; call `done(raw, error)`
        from any thread when it ends (`raw` as `infer_impl` returns it). Default: one of
        `in_flight` worker threads calls `infer_impl`, for engines whose calls release the GIL;
        an engine with its own async API (OpenVINO's AsyncInferQueue) overrides this."""
        if self._workers is None:
            self._workers = worker_pool(self.in_flight, self.worker_init_impl)
        submit_to(self._workers, self.infer_impl, feeds, done)

    def worker_init_impl(self) -> None:
        """Optional: run once on each worker thread of the default `submit_impl`, before its
        first request (an engine whose thread pool is per calling thread sizes it here)."""

    def instrument_impl(self, on: bool) -> None:
        """Optional: while on, append each call's phase times (ms) to `self.phase_ms[phase]`.
        Only untimed warm-up calls are instrumented; the timed loop never is."""

    # -- lifecycle ----------------------------------------------------------------------
    def stage(self, name: str) -> ContextManager[None]:
        """Time a stage (a context manager); an exception escaping it is attributed to it."""
        return self._clock.stage(name, self.stage_file)

    def run(self) -> Tuple[RunResult, List[Sample]]:
        spec = self.spec
        base = {"environment": describe(self.packages)}  # type: Dict[str, Any]
        try:
            with self.stage("setup"):
                self._setup(base)
            with self.stage("load"):
                faults.in_load(spec.fault, spec.memory_limit_mb)
                self.load_impl()
            with self.stage("run"):
                result, outputs = measure(self, self.scenario, self.samples, self._inputs)
            result.stage_seconds = self._clock.times()
            result.environment = base["environment"]
            result.engine_version = base["engine_version"]
            return result, outputs
        except Exception as e:  # a failing engine is a result, not a crash
            return _failed(self, e, base), []
        finally:
            if self._workers is not None:
                self._workers.shutdown(wait=False)
            try:
                self.release_impl()
            except Exception:
                pass

    def _setup(self, base: Dict[str, Any]) -> None:
        """The setup stage: what the manifest declares, the options, the engine, the inputs."""
        module = sys.modules.get(type(self).__module__)
        check_declared(getattr(module, "__file__", None), self.spec.engine, self.spec.device, self.spec.precision)
        self.options = _parse_options(self.Options, self.spec.engine_options)
        self.available_impl()
        base["engine_version"] = self.version_impl()
        self._inputs = load_samples(self.spec.inputs_path)
        if not self._inputs:
            raise ProtocolError("{} holds no input samples".format(self.spec.inputs_path))
        self.samples = batched(self._inputs, self.spec.batch_size)
        self.scenario.setup(self)


def _failed(runner: Runner, e: Exception, base: Dict[str, Any]) -> RunResult:
    """The row of a run that raised `e`: its status, stage and what the runner knew by then."""
    spec = runner.spec
    skipped = isinstance(e, E2EError) and e.status == "skipped"
    if isinstance(e, MemoryError):
        limit = " at the {} MB limit".format(spec.memory_limit_mb) if spec.memory_limit_mb else ""
        e = MemoryError("out of memory{}: {}".format(limit, str(e) or type(e).__name__))
    return RunResult.from_error(
        spec.engine, e, stage=None if skipped else runner._clock.failed or "setup",
        precision=runner.precision or "", settings=runner.settings, precision_detail=runner.precision_detail,
        stage_seconds=runner._clock.times(), **base)


def _parse_options(options_cls: Any, options: Dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(options_cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ProtocolError("unknown engine option(s) {}; this engine takes: {}".format(
            ", ".join(unknown), ", ".join(sorted(names)) or "none"))
    try:
        return options_cls(**options)
    except (TypeError, ValueError) as e:
        raise ProtocolError("bad engine options: {}".format(e)) from None


def find_runner_class(module: Any) -> Optional[type]:
    """The one Runner subclass a runner module defines."""
    found = [v for v in vars(module).values()
             if isinstance(v, type) and issubclass(v, Runner) and v is not Runner
             and v.__module__ == module.__name__]
    return found[0] if len(found) == 1 else None

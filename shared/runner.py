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

The scenario (`spec.scenario`) decides what a timed loop does: `latency` calls `infer_impl`
once at a time; `throughput` keeps `in_flight` requests going through `submit_impl` (the
engine's own async API, or by default worker threads calling `infer_impl`), with the thread
budget split among them (`threads_per_request`). With `spec.batch_size` B > 1 the samples are
the test inputs stacked B at a time (shared.batching), and the outputs are split back per input
for parity.

A hook raises `UnsupportedError` when the engine cannot handle the model and
`EngineUnavailable` when it cannot run here; anything else is a failure of the stage it was
raised in. Timing wraps `infer_impl` only: host->device and device->host copies belong in it
(the copy policy is "inside" for every engine).
"""
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from . import atomic, faults, session
from .batching import batched, unbatched
from .environment import describe
from .errors import E2EError, EngineUnavailable, ProtocolError
from .monitor import ResourceWindow, peak_rss_mb, reset_peak_rss, resets_peak_rss
from .records import write_json_atomic
from .manifest import declared
from .result import NOT_READ_BACK, Latency, Measurement, RunResult
from .spec import RunSpec
from .tensors import Sample, load_samples
from .timing import GC_POLICY, Loop, StopRule, concurrent_loop, quiet_gc, timed_loop


@dataclasses.dataclass
class NoOptions:
    """Engine options of a runner that takes none."""


class Runner:
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
        #: budget; set before `load_impl`, which may change them (an engine's own choice)
        self.in_flight = 1
        self.threads_per_request = spec.threads
        self._workers: Any = None  # the default submit_impl's thread pool
        self._inputs: List[Sample] = []  # the test inputs as read (batch 1)
        #: phase -> ms per instrumented call (see `instrument_impl`)
        self.phase_ms: Dict[str, List[float]] = {}
        self._stages: List[str] = []
        self._stage_seconds: Dict[str, float] = {}
        self._failed_stage: Optional[str] = None
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
            from concurrent.futures import ThreadPoolExecutor

            self._workers = ThreadPoolExecutor(self.in_flight, thread_name_prefix="e2e-request",
                                               initializer=self.worker_init_impl)

        def finished(future: Any) -> None:
            error = future.exception()
            done(None if error else future.result(), error)

        self._workers.submit(self.infer_impl, feeds).add_done_callback(finished)

    def worker_init_impl(self) -> None:
        """Optional: run once on each worker thread of the default `submit_impl`, before its
        first request (an engine whose thread pool is per calling thread sizes it here)."""

    def instrument_impl(self, on: bool) -> None:
        """Optional: while on, append each call's phase times (ms) to `self.phase_ms[phase]`.
        Only untimed warm-up calls are instrumented; the timed loop never is."""

    # -- lifecycle ----------------------------------------------------------------------
    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage; an exception escaping it is attributed to it."""
        self._stages.append(name)
        if self.stage_file:
            with open(self.stage_file, "w") as f:
                f.write(name)
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self._failed_stage = self._failed_stage or name  # the innermost stage
            raise
        finally:
            elapsed = time.perf_counter() - start
            self._stage_seconds[name] = self._stage_seconds.get(name, 0.0) + elapsed
            self._stages.pop()
            if self._stages:  # a sub-stage's time is not counted twice in its parent
                parent = self._stages[-1]
                self._stage_seconds[parent] = self._stage_seconds.get(parent, 0.0) - elapsed

    def run(self) -> Tuple[RunResult, List[Sample]]:
        spec = self.spec
        base = {"environment": describe(self.packages)}  # type: Dict[str, Any]
        try:
            with self.stage("setup"):
                self._check_declared()
                self.options = _parse_options(self.Options, spec.engine_options)
                self.available_impl()
                base["engine_version"] = self.version_impl()
                self._inputs = load_samples(spec.inputs_path)
                if not self._inputs:
                    raise ProtocolError("{} holds no input samples".format(spec.inputs_path))
                self.samples = batched(self._inputs, spec.batch_size)
                if spec.scenario == "throughput" and self.concurrent:
                    self.in_flight = spec.concurrency or spec.threads
                    self.threads_per_request = max(1, spec.threads // self.in_flight)
                elif spec.scenario == "throughput":
                    self.settings["one_request_in_flight"] = "this runner's engine calls cannot overlap"
            with self.stage("load"):
                faults.in_load(spec.fault, spec.memory_limit_mb)
                self.load_impl()
            with self.stage("run"):
                result, outputs = self._measure(self.samples)
            result.stage_seconds = self._stage_times()
            result.environment = base["environment"]
            result.engine_version = base["engine_version"]
            return result, outputs
        except Exception as e:  # a failing engine is a result, not a crash
            skipped = isinstance(e, E2EError) and e.status == "skipped"
            if isinstance(e, MemoryError):
                limit = " at the {} MB limit".format(spec.memory_limit_mb) if spec.memory_limit_mb else ""
                e = MemoryError("out of memory{}: {}".format(limit, str(e) or type(e).__name__))
            return RunResult.from_error(
                spec.engine, e, stage=None if skipped else self._failed_stage or "setup",
                precision=self.precision or "", settings=self.settings, precision_detail=self.precision_detail,
                stage_seconds=self._stage_times(), **base), []
        finally:
            if self._workers is not None:
                self._workers.shutdown(wait=False)
            try:
                self.release_impl()
            except Exception:
                pass

    def cache_file(self, suffix: str, parts: Any, samples: Sequence[Sample] = ()) -> str:
        """Where something derived from this model (a converted model, a built engine) is kept
        across runs. Keyed by the model (the coordinator's digest of the file and its external
        data, or else the file's bytes and its external files by size and time), `parts`
        (versions, options) and the `samples` it was calibrated on. Other files in the model's
        folder do not count: a log written beside a model must not invalidate its caches."""
        digest = hashlib.sha256()
        if self.spec.model_sha256:
            digest.update(self.spec.model_sha256.encode())
        else:
            with open(self.spec.model_path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            folder = os.path.dirname(os.path.abspath(self.spec.model_path))
            beside = [(name, os.stat(path).st_size, os.stat(path).st_mtime_ns) for name in sorted(self.spec.model_files)
                      for path in [os.path.join(folder, name)] if os.path.isfile(path)]
            digest.update(json.dumps(beside).encode())
        digest.update(json.dumps(parts, sort_keys=True, default=str).encode())
        for sample in samples:
            for name, array in sample.items():
                digest.update(name.encode() + array.tobytes())
        cache = self.spec.cache_dir or tempfile.gettempdir()
        os.makedirs(cache, exist_ok=True)
        return os.path.join(cache, digest.hexdigest()[:24] + suffix)

    def cached(self, suffix: str, parts: Any, make: Callable[[str], None], samples: Sequence[Sample] = (),
               phase: str = "convert") -> str:
        """The path of `cache_file(suffix, parts, samples)`, made by `make(tmp)` (a file or a
        folder at `tmp`) unless it is in the cache whole: made once however many runs want it at
        once, published whole, checked on every read (shared/atomic.py). A damaged entry is made
        again, and the row's settings say so (`cache_remade`)."""
        path = self.cache_file(suffix, parts, samples)
        outcome = atomic.ensure(path, make, "The cached " + suffix.lstrip("-."), log=print, phase=phase)
        if outcome.startswith("remade"):  # a row may remake more than one (MNN: specialised, then converted)
            remade = "{}: {}".format(os.path.basename(path), outcome.partition(": ")[2])
            before = self.settings.get("cache_remade")
            self.settings["cache_remade"] = "{}; {}".format(before, remade) if before else remade
        return path

    def convert_cached(self, suffix: str, parts: Any, make: Callable[[str], str], log: str = "convert.log",
                       cache: bool = True) -> "Converted":
        """A model converted by a tool into a folder, kept in the cache with the tool's log.
        `make(folder)` writes the converted files into `folder` (made for it) and returns the
        log, which is kept beside them as `log`. Returns the folder, the log and whether it was
        converted now (`Converted`); on a cache hit the log is printed into the runner's log, as
        the tool printed it when it ran. The entry is `cached(suffix, parts, ...)`'s (the same
        key); with `cache` off it is `<entry>.uncached`, made again on every run. The row's
        settings say where the log is (`converter_log`) and whether this run made it
        (`conversion`: converted or cached)."""
        entry = self.cache_file(suffix, parts) + ("" if cache else ".uncached")
        made = []  # type: List[str]

        def convert(tmp: str) -> None:
            os.mkdir(tmp)
            text = make(tmp)
            with open(os.path.join(tmp, log), "w", encoding="utf-8") as f:
                f.write(text)
            made.append(text)

        if cache:
            self.cached(suffix, parts, convert)
        else:
            shutil.rmtree(entry, ignore_errors=True)
            convert(entry)
        self.settings.update(converter_log=os.path.join(entry, log), conversion="converted" if made else "cached")
        if made:
            return Converted(entry, made[0], True)
        with open(os.path.join(entry, log), encoding="utf-8") as f:
            text = f.read()
        print(text, flush=True)
        return Converted(entry, text, False)

    def calibration_samples(self) -> List[Sample]:
        """What int8 quantization calibrates on: `--calibration` images, else the test inputs."""
        return load_samples(self.spec.calibration_path) if self.spec.calibration_path else self.samples

    def _check_declared(self) -> None:
        """The spec's device kind and precision against the manifest beside the runner (what
        the coordinator skips rows by, shared/manifest.py): a runner does not check them again.
        A runner class defined outside a runner folder (in a test) has no manifest to check."""
        module = sys.modules.get(type(self).__module__)
        found = declared(module.__file__) if getattr(module, "__file__", None) else None
        if found is None:
            return
        kind = "cpu" if self.spec.device == "cpu" else "cuda"
        note = "; ".join(found.get("note", []))
        if kind not in found["devices"]:
            raise EngineUnavailable("the {} runner runs on {}, not {} ({}); rerun with --device {}".format(
                self.spec.engine, ", ".join(found["devices"]), kind, note or "its manifest.yaml",
                found["devices"][0] if found["devices"] else "?"))
        if self.spec.precision not in found["precisions"]:
            raise EngineUnavailable("the {} runner offers {}, not {} ({}); rerun with --precision {}".format(
                self.spec.engine, ", ".join(found["precisions"]), self.spec.precision, note or "its manifest.yaml",
                found["precisions"][0] if found["precisions"] else "?"))

    def _measure(self, samples: List[Sample]) -> Tuple[RunResult, List[Sample]]:
        spec = self.spec
        throughput = spec.scenario == "throughput"
        # One call at a time (first inference, parity pass, warm-up): through the engine's async
        # path in the throughput scenario, so its outputs are the ones checked.
        def call(feeds: Sample) -> Any:  # looked up per call: instrument_impl may shadow infer_impl while on
            return self._submit_and_wait(feeds) if throughput else self.infer_impl(feeds)

        load_peak = peak_rss_mb()
        start = time.perf_counter()
        raw = call(samples[0])
        first_ms = (time.perf_counter() - start) * 1e3
        fault = spec.fault
        outputs = [faults.outputs(fault, _checked(self.outputs_impl(raw)))]
        raw = None
        n = len(samples)
        self._progress("warm-up", first_ms, first_ms / 1e3 * (max(spec.warmup, n - 1)) + self._timed_estimate(first_ms))
        # Warm-up: the rest of the inputs first, their outputs kept for parity, so no call is
        # spent twice; then more calls until `warmup` calls or `warmup_time_s` seconds. Every
        # warm-up call is instrumented where a hook offers phases; the later half of them,
        # nearest to the steady state, gives the breakdown.
        calls, warm_start = 0, time.perf_counter()
        self.instrument_impl(True)
        try:
            while calls < n - 1 or (calls < spec.warmup and time.perf_counter() - warm_start < spec.warmup_time_s):
                calls += 1
                raw = call(samples[calls % n])
                if calls < n:
                    outputs.append(faults.outputs(fault, _checked(self.outputs_impl(raw))))
                raw = None
        finally:
            self.instrument_impl(False)
        if throughput:  # every request slot (stream, worker thread) started once before timing
            calls += len(concurrent_loop(self.submit_impl, samples, StopRule(2 * self.in_flight), self.in_flight)[0])
        warmup_s = time.perf_counter() - warm_start
        per_call_ms = warmup_s * 1e3 / calls if calls else first_ms
        self._progress("timed", first_ms, self._timed_estimate(per_call_ms / self.in_flight))
        rule = StopRule(spec.iterations, spec.min_iterations, spec.min_time_s, spec.target_ci, spec.max_time_s)
        latencies, indices, medians, stops = [], [], [], []  # type: List[float], List[int], List[float], List[str]
        wall = 0.0
        peak_before = peak_rss_mb()  # load, compile and warm-up
        reset_peak_rss()
        with ResourceWindow(spec.device_index if spec.device != "cpu" else None) as window, quiet_gc():
            if self.channel is not None:  # session mode: slices when the coordinator says
                slices = self._serve(samples, per_call_ms)
                latencies, indices, wall = slices.latencies_ms, slices.input_index, slices.wall_s
                stops.append(slices.stop)
            for _ in range(spec.repeats if self.channel is None else 0):
                loop = self._loop(samples, rule)
                latencies += loop.latencies_ms
                indices += loop.input_index
                medians.append(Latency.from_values(loop.latencies_ms).p50)
                stops.append(loop.stop)
                wall += loop.wall_s
        latency = Latency.from_values(latencies, indices)
        if throughput:  # the fair-accounting record: the budget every engine shares, and its split
            self.settings.update(requests_in_flight=self.in_flight, threads_budget=spec.threads,
                                 threads_per_request=self.threads_per_request)
        resources = window.resources()
        if self.channel is not None:  # busy while timed, not while waiting for its next slice
            resources.cpu_util_percent = 100.0 * slices.cpu_s / wall if wall > 0 else 0.0
        resources.peak_rss_mb = max(resources.peak_rss_mb, peak_before)  # the whole process
        resources.load_peak_rss_mb = load_peak
        resources.steady_peak_rss_mb = peak_rss_mb() if resets_peak_rss() else None
        result = RunResult(
            engine=spec.engine, status="ok", settings=self.settings,
            precision=self.precision if self.precision is not None else NOT_READ_BACK,
            precision_detail=self.precision_detail, first_inference_ms=first_ms, latency_ms=latency,
            per_input_ms={str(i): Latency.from_values([x for x, k in zip(latencies, indices) if k == i])
                          for i in sorted(set(indices))},
            measurement=Measurement(
                stop=_worst(stops), target_ci=None if spec.iterations else spec.target_ci, warmup_calls=calls,
                warmup_s=warmup_s, timed_s=wall if self.channel is not None else window.wall_seconds, gc=GC_POLICY,
                latencies_ms=[round(x, 6) for x in latencies], input_index=indices),
            repeat_p50_ms=medians if spec.repeats > 1 else [],
            breakdown_ms={k: Latency.from_values(v[len(v) // 2:]).p50 for k, v in self.phase_ms.items() if v},
            # latency: calls back to back, so samples/s from the mean call; throughput: the calls
            # finished over the loops' wall time, the drain of the last requests included
            throughput_per_s=spec.batch_size * (len(latencies) / wall if throughput else 1e3 / latency.mean),
            scenario=spec.scenario, batch_size=spec.batch_size, concurrency=self.in_flight,
            achieved_concurrency=sum(latencies) / 1e3 / wall if wall > 0 else None, resources=resources,
        )
        outputs = unbatched(outputs, self._inputs, spec.batch_size)
        return result, outputs if spec.save_outputs else []

    def _loop(self, samples: List[Sample], rule: StopRule) -> Loop:
        """One timed loop of the spec's scenario."""
        if self.spec.scenario == "throughput":
            return concurrent_loop(self.submit_impl, samples, rule, self.in_flight)
        return timed_loop(self.infer_impl, samples, rule)

    def _serve(self, samples: List[Sample], per_call_ms: float) -> "_Slices":
        """Session mode (shared/session.py): say ready, then time the slices asked for until
        told to stop. Each slice starts at the input the coordinator names (every row of a round
        times the same inputs), or repeats one input (the caching audit); a `warm` slice is
        untimed warm-up again (after the other rows loaded, which may have taken minutes and
        pushed this runner's pages out of memory). After a slice the
        runner waits for its own threads to go quiet before it answers, so that a pool still
        spinning never overlaps the next engine's slice; what it used while waiting is said."""
        channel = self.channel
        assert channel is not None
        out = _Slices()
        channel.send({"event": "ready", "per_call_ms": per_call_ms})
        while True:
            command = channel.receive()
            if command is None or command.get("cmd") == "stop":
                out.stop = (command or {}).get("stop", "budget")
                return out
            n, start = len(samples), int(command.get("start", 0)) % len(samples)
            order = [samples[start]] if command.get("repeat") else samples[start:] + samples[:start]
            cpu0 = session.cpu_seconds()
            loop = self._loop(order, StopRule(int(command["calls"])))
            cpu = session.cpu_seconds() - cpu0
            settle_ms = session.settle()
            index = [start if command.get("repeat") else (start + i) % n for i in loop.input_index]
            # the audit's slices are the audit's, and a warm-up slice no one's: not the row's figures
            if not command.get("repeat") and not command.get("warm"):
                out.latencies_ms += loop.latencies_ms
                out.input_index += index
                out.wall_s += loop.wall_s
                out.cpu_s += cpu
            channel.send({"event": "timed", "latencies_ms": loop.latencies_ms, "input_index": index,
                          "wall_s": loop.wall_s, "slice_cpu_s": cpu, "settle_ms": settle_ms,
                          "waited_s": command["waited_s"], "waiting_cpu_s": command["waiting_cpu_s"]})

    def _submit_and_wait(self, feeds: Sample) -> Any:
        """One request through `submit_impl`, waited for: its raw outputs."""
        import threading

        ended = threading.Event()
        box = []  # type: List[Any]

        def done(raw: Any, error: Optional[BaseException]) -> None:
            box.append((raw, error))
            ended.set()

        self.submit_impl(feeds, done)
        ended.wait()
        raw, error = box[0]
        if error is not None:
            raise error
        return raw

    def _timed_estimate(self, per_call_ms: float) -> float:
        """Seconds the timed loops will take, from a call's latency: the planned calls, at
        least the minimum time, at most the budget (a loop that has not converged by then)."""
        spec = self.spec
        calls = spec.iterations or spec.min_iterations
        one = max(calls * per_call_ms / 1e3, spec.min_time_s)
        return spec.repeats * (one if spec.iterations else min(one, spec.max_time_s))

    def _progress(self, phase: str, first_ms: float, eta_s: float) -> None:
        """A note for the coordinator's progress display (never written inside a timed loop)."""
        if self.progress_file:
            write_json_atomic(self.progress_file, {"phase": phase, "first_inference_ms": first_ms,
                                                   "eta_s": eta_s, "at": time.time()})

    def _stage_times(self) -> Dict[str, float]:
        """Seconds per finished stage (a sub-stage's time is not in its parent's)."""
        return {k: v for k, v in self._stage_seconds.items() if k not in self._stages}


class Converted(NamedTuple):
    """What `Runner.convert_cached` gives: the folder of the converted files, the converter's log,
    and whether this run converted it (else it came from the cache)."""

    folder: str
    log: str
    converted: bool


@dataclasses.dataclass
class _Slices:
    """What a session's slices timed, together."""

    latencies_ms: List[float] = dataclasses.field(default_factory=list)
    input_index: List[int] = dataclasses.field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    stop: str = "budget"


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


def _worst(stops: List[str]) -> str:
    """One stop reason for several repeats: budget if any loop ran out of time."""
    return "budget" if "budget" in stops else stops[0]


def _checked(outputs: Any) -> Sample:
    import numpy as np

    if not isinstance(outputs, dict) or not all(isinstance(v, np.ndarray) for v in outputs.values()):
        raise ProtocolError("infer_impl (through outputs_impl) must give a dict of name -> numpy array")
    return outputs


def find_runner_class(module: Any) -> Optional[type]:
    """The one Runner subclass a runner module defines."""
    found = [v for v in vars(module).values()
             if isinstance(v, type) and issubclass(v, Runner) and v is not Runner
             and v.__module__ == module.__name__]
    return found[0] if len(found) == 1 else None

"""The runner base class: it owns the lifecycle and the measuring, an engine writes hooks.

Lifecycle of `Runner.run()`:
  setup    check the engine is usable here, read its version, read the inputs
  load     `load_impl()`: read / convert / compile the model (hooks may time sub-stages with
           `self.stage("convert")` and `self.stage("compile")`)
  run      first inference (timed alone); warm-up: the other inputs (outputs kept for
           parity) and more calls up to `warmup` in all, the later half instrumented where a
           hook offers phases; then `repeats` timed loops over the inputs in turn
  release  `release_impl()`, always

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
import re
import tempfile
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from . import faults
from .environment import describe
from .errors import E2EError, ProtocolError
from .monitor import ResourceWindow
from .result import Latency, RunResult
from .spec import RunSpec
from .tensors import Sample, load_samples
from .timing import measure


# An ONNX tensor's external data entry {key: "location", value: <file name>}, as protobuf
# encodes it (StringStringEntryProto: field 1 = key, field 2 = value, both length-delimited):
# read from the bytes being hashed anyway, since not every runner's environment has `onnx`.
EXTERNAL_LOCATION = re.compile(rb"\x0a\x08location\x12")
EXTERNAL_NAME_BYTES = 512  # longer than a file name (255) plus its key and length prefix


def _external_locations(data: bytes) -> List[str]:
    names = []
    for match in EXTERNAL_LOCATION.finditer(data):
        size, shift, at = 0, 0, match.end()
        while at < len(data) and shift < 21:  # a varint length, at most 3 bytes for a file name
            size |= (data[at] & 0x7F) << shift
            shift, at = shift + 7, at + 1
            if not data[at - 1] & 0x80:
                break
        name = data[at:at + size].decode("utf-8", "replace")
        relative = not os.path.isabs(name) and ".." not in name.replace("\\", "/").split("/")
        if 0 < size <= 255 and at + size <= len(data) and relative:
            names.append(name)
    return names


@dataclasses.dataclass
class NoOptions:
    """Engine options of a runner that takes none."""


class Runner:
    #: distributions whose versions go into the result's environment record
    packages: List[str] = []
    #: dataclass validating `spec.engine_options` (unknown keys and bad values are errors)
    Options: Any = NoOptions

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.options: Any = None
        #: what the engine actually ran at; a hook overwrites it with what it read back
        self.precision = spec.precision
        #: effective settings read back from the engine (threads, providers, hints...)
        self.settings: Dict[str, Any] = {}
        #: the input samples, read before `load_impl` (shape specialisation, profiles)
        self.samples: List[Sample] = []
        #: phase -> ms per instrumented call (see `instrument_impl`)
        self.phase_ms: Dict[str, List[float]] = {}
        self._stages: List[str] = []
        self._stage_seconds: Dict[str, float] = {}
        self._failed_stage: Optional[str] = None
        #: where the current stage's name is written, so a crash can still be attributed
        self.stage_file: Optional[str] = None

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
                self.options = _parse_options(self.Options, spec.engine_options)
                self.available_impl()
                base["engine_version"] = self.version_impl()
                self.samples = load_samples(spec.inputs_path)
                if not self.samples:
                    raise ProtocolError("{} holds no input samples".format(spec.inputs_path))
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
                precision=self.precision, settings=self.settings,
                stage_seconds=self._stage_times(), **base), []
        finally:
            try:
                self.release_impl()
            except Exception:
                pass

    def cache_file(self, suffix: str, parts: Any, samples: Sequence[Sample] = ()) -> str:
        """Where something derived from this model (a converted model, a built engine) is kept
        across runs. Keyed by the model file's bytes, the external data files it names by size
        and time (weights over 2 GB live there, beside an unchanged graph), `parts` (versions,
        options) and the `samples` it was calibrated on. Other files in the model's folder do
        not count: a log written beside a model must not invalidate its caches."""
        digest = hashlib.sha256()
        names, tail = set(), b""
        with open(self.spec.model_path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
                names.update(_external_locations(tail + block))
                tail = block[-EXTERNAL_NAME_BYTES:]  # a name split across two blocks is still found
        folder = os.path.dirname(os.path.abspath(self.spec.model_path))
        beside = sorted((name, os.stat(path).st_size, os.stat(path).st_mtime_ns) for name in names
                        for path in [os.path.join(folder, name)] if os.path.isfile(path))
        digest.update(json.dumps([beside, parts], sort_keys=True, default=str).encode())
        for sample in samples:
            for name, array in sample.items():
                digest.update(name.encode() + array.tobytes())
        cache = self.spec.cache_dir or tempfile.gettempdir()
        os.makedirs(cache, exist_ok=True)
        return os.path.join(cache, digest.hexdigest()[:24] + suffix)

    def calibration_samples(self) -> List[Sample]:
        """What int8 quantization calibrates on: `--calibration` images, else the test inputs."""
        return load_samples(self.spec.calibration_path) if self.spec.calibration_path else self.samples

    def _measure(self, samples: List[Sample]) -> Tuple[RunResult, List[Sample]]:
        spec = self.spec
        start = time.perf_counter()
        raw = self.infer_impl(samples[0])
        first_ms = (time.perf_counter() - start) * 1e3
        fault = spec.fault
        outputs = [faults.outputs(fault, _checked(self.outputs_impl(raw)))]
        # Warm-up: the rest of the inputs first, their outputs kept for parity, so no call is
        # spent twice. Its later half, nearest to the steady state, carries the phase breakdown
        # where a hook offers one.
        n = len(samples)
        calls = max(spec.warmup, n - 1)
        try:
            for i in range(1, calls + 1):
                if i - 1 == calls // 2:
                    self.instrument_impl(True)
                raw = self.infer_impl(samples[i % n])
                if i < n:
                    outputs.append(faults.outputs(fault, _checked(self.outputs_impl(raw))))
        finally:
            self.instrument_impl(False)
        latencies, medians = [], []  # type: List[float], List[float]
        with ResourceWindow(spec.device_index if spec.device != "cpu" else None) as window:
            for _ in range(spec.repeats):
                loop = measure(self.infer_impl, samples, spec.iterations, spec.min_time_s)
                latencies += loop
                medians.append(Latency.from_values(loop).p50)
        latency = Latency.from_values(latencies)
        result = RunResult(
            engine=spec.engine, status="ok", precision=self.precision, settings=self.settings,
            first_inference_ms=first_ms, latency_ms=latency,
            repeat_p50_ms=medians if spec.repeats > 1 else [],
            breakdown_ms={k: Latency.from_values(v).p50 for k, v in self.phase_ms.items() if v},
            throughput_per_s=spec.batch_size * 1e3 / latency.mean, resources=window.resources(),
        )
        return result, outputs if spec.save_outputs else []

    def _stage_times(self) -> Dict[str, float]:
        """Seconds per finished stage (a sub-stage's time is not in its parent's)."""
        return {k: v for k, v in self._stage_seconds.items() if k not in self._stages}


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

"""RunSpec: everything a runner is told, written by the launcher as `spec.json` in the io dir."""
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from . import scenarios
from .faults import FAULTS
from .records import Record

SCHEMA_VERSION = 4  # 3: scenario and concurrency; 4: session
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# How the timed loop drives the engine: one module each in shared/scenarios/, found there (latency:
# one request at a time; throughput: `concurrency` requests in flight).
SCENARIOS = tuple(scenarios.REGISTRY)


@dataclass
class RunSpec(Record):
    engine: str
    model_path: str  # ONNX file (read-only); the torch reference gets its state dict here
    inputs_path: str  # .npz written by shared.tensors.save_samples
    # sha256 of the model file and its external data, computed once by the coordinator (runners
    # key their caches on it instead of rehashing gigabytes); "" when unknown
    model_sha256: str = ""
    model_files: List[str] = field(default_factory=list)  # external data files beside the model, by name
    device: str = "cpu"  # "cpu" or "cuda:N"
    precision: str = "fp32"
    # Warm-up: the first inference, the other inputs (their outputs kept for parity), then
    # more calls until `warmup` calls or `warmup_time_s` seconds, whichever comes first.
    warmup: int = 5
    warmup_time_s: float = 10.0
    # The timed loop. `iterations` set: a fixed count (and at least `min_time_s`). None: until
    # `min_iterations` calls and `min_time_s` seconds are reached and p50's 95% interval is
    # within +-`target_ci` of it, or until `max_time_s` seconds are spent (the row's budget).
    iterations: Optional[int] = None
    min_iterations: int = 10
    min_time_s: float = 0.0
    target_ci: float = 0.01
    max_time_s: float = 60.0
    repeats: int = 1  # timed loops in a row; the spread of their medians is reported
    scenario: str = "latency"
    batch_size: int = 1  # test inputs stacked B at a time on the batch axis (shared.batching)
    # throughput: requests in flight; 0: the engine's own choice (OpenVINO's optimal number of
    # infer requests; else one per thread). The latency scenario has one.
    concurrency: int = 1
    threads: int = 1  # the CPU budget: in the throughput scenario, split among the requests
    engine_options: Dict[str, Any] = field(default_factory=dict)
    save_outputs: bool = True
    cache_dir: Optional[str] = None  # writable, persistent across runs (engine caches, tuning logs)
    calibration_path: Optional[str] = None  # .npz of int8 calibration inputs; None: the test inputs
    memory_limit_mb: Optional[int] = None  # address-space limit the runner sets on itself (not in a container)
    fault: str = ""  # test hook: a fault to cause (shared.faults)
    # session mode (shared/session.py): after warm-up, time the slices the coordinator asks for
    # over the io folder's control pipe instead of the timed loops above, until told to stop
    session: bool = False
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(
                "schema_version {} is not {}: coordinator and runner are from different "
                "e2e versions; rebuild the runner environment".format(self.schema_version, SCHEMA_VERSION)
            )
        if self.precision not in PRECISIONS:
            raise ValueError("precision must be one of {}, got {!r}".format(", ".join(PRECISIONS), self.precision))
        if self.device != "cpu" and not (self.device.startswith("cuda:") and self.device[5:].isdigit()):
            raise ValueError("device must be 'cpu' or 'cuda:N', got {!r}".format(self.device))
        if self.scenario not in scenarios.REGISTRY:
            raise ValueError("scenario must be one of {}, got {!r}".format(", ".join(scenarios.REGISTRY), self.scenario))
        if self.concurrency < 0 or (not scenarios.get(self.scenario).concurrent and self.concurrency != 1):
            raise ValueError("concurrency must be >= 0 (0: the engine's choice), and 1 in the {} scenario".format(
                self.scenario))
        for name in ("warmup", "batch_size", "threads", "repeats", "min_iterations"):
            if getattr(self, name) < (0 if name == "warmup" else 1):
                raise ValueError("{} must be positive, got {}".format(name, getattr(self, name)))
        if self.iterations is not None and self.iterations < 1:
            raise ValueError("iterations must be >= 1 (or None: until the median is known)")
        if not 0 < self.target_ci < 1 or self.max_time_s <= 0 or self.warmup_time_s < 0:
            raise ValueError("target_ci must be in (0, 1), max_time_s > 0, warmup_time_s >= 0")
        if self.fault and self.fault not in FAULTS:
            raise ValueError("fault must be one of {}, got {!r}".format(", ".join(FAULTS), self.fault))
        if self.min_time_s < 0:
            raise ValueError("min_time_s must be >= 0")

    def relative_paths(self) -> Dict[str, str]:
        """Paths a launcher must not hand on: the runner starts in its io folder, not where
        the coordinator was started, so a relative path would name another file there."""
        names = ("model_path", "inputs_path", "cache_dir", "calibration_path")
        return {n: getattr(self, n) for n in names if getattr(self, n) and not os.path.isabs(getattr(self, n))}

    @property
    def device_index(self) -> int:
        return int(self.device[5:]) if self.device.startswith("cuda:") else 0

    def replace(self, **changes: Any) -> "RunSpec":
        return dataclasses.replace(self, **changes)

"""RunSpec: everything a runner is told, written by the launcher as `spec.json` in the io dir."""
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from .faults import FAULTS
from .records import Record

SCHEMA_VERSION = 1
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass
class RunSpec(Record):
    engine: str
    model_path: str  # ONNX file (read-only); the torch reference gets its state dict here
    inputs_path: str  # .npz written by shared.tensors.save_samples
    device: str = "cpu"  # "cpu" or "cuda:N"
    precision: str = "fp32"
    warmup: int = 5
    iterations: int = 50
    min_time_s: float = 0.0  # keep measuring until both iterations and this time are reached
    repeats: int = 1  # timed loops in a row; the spread of their medians is reported
    batch_size: int = 1
    threads: int = 1
    engine_options: Dict[str, Any] = field(default_factory=dict)
    save_outputs: bool = True
    cache_dir: Optional[str] = None  # writable, persistent across runs (engine caches, tuning logs)
    calibration_path: Optional[str] = None  # .npz of int8 calibration inputs; None: the test inputs
    memory_limit_mb: Optional[int] = None  # address-space limit the runner sets on itself (not in a container)
    fault: str = ""  # test hook: a fault to cause (shared.faults)
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
        for name in ("warmup", "batch_size", "threads", "repeats"):
            if getattr(self, name) < (0 if name == "warmup" else 1):
                raise ValueError("{} must be positive, got {}".format(name, getattr(self, name)))
        if self.iterations < 1 and self.min_time_s <= 0:
            raise ValueError("iterations must be >= 1 (or min_time_s > 0)")
        if self.fault and self.fault not in FAULTS:
            raise ValueError("fault must be one of {}, got {!r}".format(", ".join(FAULTS), self.fault))
        if self.min_time_s < 0:
            raise ValueError("min_time_s must be >= 0")

    @property
    def device_index(self) -> int:
        return int(self.device[5:]) if self.device.startswith("cuda:") else 0

    def replace(self, **changes: Any) -> "RunSpec":
        return dataclasses.replace(self, **changes)

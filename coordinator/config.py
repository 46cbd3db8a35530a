"""The bench configuration, resolved in one place: CLI flag > default (machine facts)."""
import os
import typing
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from shared.errors import ProtocolError
from shared.records import convert
from shared.spec import PRECISIONS

from . import host
from .errors import UsageError
from .models import model_name

# Row outcomes `--fail-on` can turn into a non-zero exit status (see README, "Exit status").
FAIL_ON = ("failed", "timeout", "unsupported", "skipped", "parity", "noisy", "imprecise")  # exit_status.OUTCOMES


def default_cache() -> Path:
    import os

    return Path(os.environ.get("E2E_CACHE_DIR") or Path.home() / ".cache" / "e2e")


@dataclass
class BenchConfig:
    model: str
    engines: str = "all"
    device: Optional[str] = None  # None: cuda:0 when an NVIDIA GPU is visible, else cpu
    precisions: List[str] = field(default_factory=lambda: ["fp32"])
    warmup: int = 5  # untimed calls at most (the parity calls on every input always run)...
    warmup_time: float = 10.0  # ...and seconds of them at most
    iterations: Optional[int] = None  # a fixed count of timed calls; None: until the median is known
    min_time: Optional[float] = None  # seconds of timed calls at least; None: 1 s, or 0 with --iterations
    max_time: float = 60.0  # seconds of timed calls at most per row (a loop that has not converged)
    target_ci: float = 0.01  # stop once p50's 95% interval is within +-this fraction of it
    repeats: int = 1  # timed loops per row; the spread of their medians is reported
    threads: Optional[int] = None  # None: the machine's physical cores, the same for every engine
    out: Optional[Path] = None
    weights: str = "pretrained"
    seed: int = 0
    images: Optional[Path] = None
    dataset: Optional[Path] = None  # labelled data: task accuracy per engine
    calibration: Optional[Path] = None  # images int8 quantization calibrates on; None: the test inputs
    limit: Optional[int] = None  # the first N images of the dataset
    input_size: Optional[Tuple[int, int]] = None
    opset: int = 17
    launcher: str = "auto"
    timeout: float = 1800.0
    cv_threshold: float = 0.05  # rows whose latency CV exceeds it are flagged noisy
    memory_limit: Optional[int] = None  # MB per runner; None: 80% of RAM in a container, none in a venv
    engine_options: List[str] = field(default_factory=list)  # "ENGINE.KEY=VALUE", checked by the runner
    cache_dir: Path = field(default_factory=default_cache)
    fail_on: List[str] = field(default_factory=list)  # row outcomes that make the exit status non-zero

    def __post_init__(self) -> None:
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            raise UsageError(f"unknown precision {', '.join(bad) or '(none)'}; valid: {', '.join(PRECISIONS)}")
        if self.device is None:
            self.device = "cuda:0" if host.nvidia_gpus() else "cpu"
        elif self.device == "cuda":
            self.device = "cuda:0"
        if self.device != "cpu" and not (self.device.startswith("cuda:") and self.device[5:].isdigit()):
            raise UsageError(f"unknown device {self.device!r}; valid: cpu, cuda, cuda:N")
        if self.threads is None:
            self.threads = host.physical_cores()
        for name in ("iterations", "threads", "repeats"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"--{name} must be at least 1")
        if self.min_time is None:
            self.min_time = 0.0 if self.iterations else 1.0
        if not 0 < self.target_ci < 1 or self.max_time <= 0 or self.warmup_time < 0:
            raise UsageError("--target-ci must be between 0 and 1, --max-time > 0, --warmup-time >= 0")
        bad = sorted(set(self.fail_on) - set(FAIL_ON))
        if bad:
            raise UsageError(f"--fail-on: unknown outcome {', '.join(bad)}; valid: {', '.join(FAIL_ON)}")
        self._absolute_paths()
        if self.images is not None and self.dataset is not None:
            raise UsageError("--images and --dataset both name the test images: give one")
        if self.warmup < 0 or self.min_time < 0 or self.timeout <= 0:
            raise UsageError("--warmup and --min-time must be >= 0, --timeout > 0")
        if self.memory_limit is not None and self.memory_limit < 64:
            raise UsageError("--memory-limit is in MB and must be at least 64")
        self.options_for("")  # the format is checked here, the keys by each runner
        if self.launcher not in ("auto", "venv", "docker"):
            raise UsageError(f"unknown launcher {self.launcher!r}; valid: auto, venv, docker")

    def _absolute_paths(self) -> None:
        """Every path made absolute once, here: runners start in their own working directory,
        and the report must name files that exist wherever it is read from."""
        for name in ("out", "images", "dataset", "calibration", "cache_dir"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, _absolute(value))
        if self.model.endswith(".onnx"):
            self.model = str(_absolute(self.model))
        if self.weights not in ("pretrained", "random"):
            self.weights = str(_absolute(self.weights))
        if self.out is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            self.out = _absolute(Path("runs") / f"{stamp}-{model_name(self.model)}")

    def options_for(self, engine: str) -> Dict[str, Any]:
        """`--engine-option ENGINE.KEY=VALUE` for this engine; values read as YAML scalars."""
        import yaml

        options = {}
        for item in self.engine_options:
            target, eq, value = item.partition("=")
            name, dot, key = target.partition(".")
            if not (eq and dot and name and key):
                raise UsageError(f"--engine-option {item!r}: expected ENGINE.KEY=VALUE, e.g. tvm.opt_level=2")
            if name == engine:
                try:
                    options[key] = yaml.safe_load(value)
                except yaml.YAMLError:
                    options[key] = value
        return options

    def to_dict(self) -> Dict[str, Any]:
        """JSON values, for report.json; `from_dict` reads them back (`--resume`)."""
        plain = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v for k, v in plain.items()}

    @classmethod
    def from_dict(cls, data: Any, where: str = "config") -> "BenchConfig":
        """Checked: an unknown key or a value of the wrong type is one clear error."""
        if not isinstance(data, dict):
            raise UsageError(f"{where}: expected a mapping of option names to values")
        hints = typing.get_type_hints(cls)
        names = [f.name for f in fields(cls)]
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(names)}")
        if "model" not in data:
            raise UsageError(f"{where}: no model given (--model)")
        return cls(**{k: _typed(hints[k], v, f"{where}: {k}") for k, v in data.items()})


def _absolute(path: Any) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def _typed(hint: Any, value: Any, where: str) -> Any:
    """`value` as the field's type. Beyond JSON's types (the protocol's own check), a config
    file gives paths as strings, the input size as "HxW" and lists as comma-separated strings."""
    inner = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union and value is not None:  # Optional[X]
        return _typed(inner[0], value, where)
    if hint is Path and isinstance(value, str):
        return Path(value)
    if typing.get_origin(hint) is tuple:  # the input size
        if isinstance(value, str):
            return parse_size(value)
        value = convert(List[int], value, where)
        if len(value) == 2:
            return tuple(value)
    if typing.get_origin(hint) is list and isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    try:
        return convert(hint, value, where)
    except (ProtocolError, TypeError):
        expected = {list: "a list of names (or one comma-separated string)", tuple: "HxW or [H, W]"}.get(
            typing.get_origin(hint), getattr(hint, "__name__", str(hint)))
        raise UsageError(f"{where}: expected {expected}, got {value!r}") from None


def parse_size(text: Optional[str]) -> Optional[Tuple[int, int]]:
    """`480x640` (height x width)."""
    if text is None:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--input-size must look like 480x640 (height x width), got {text!r}") from None
    if h < 16 or w < 16:
        raise UsageError(f"--input-size {text}: both sides must be at least 16")
    return h, w

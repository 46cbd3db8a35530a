"""The bench configuration, resolved in one place: CLI flag > default (machine facts)."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

from shared.spec import PRECISIONS

from . import host
from .errors import UsageError


def default_cache() -> Path:
    import os

    return Path(os.environ.get("E2E_CACHE_DIR") or Path.home() / ".cache" / "e2e")


@dataclass
class BenchConfig:
    model: str
    engines: str = "all"
    device: Optional[str] = None  # None: cuda:0 when an NVIDIA GPU is visible, else cpu
    precisions: List[str] = field(default_factory=lambda: ["fp32"])
    warmup: int = 5
    iterations: int = 50
    min_time: float = 0.0
    repeats: int = 1  # timed loops per row; the spread of their medians is reported
    threads: Optional[int] = None  # None: the machine's physical cores, the same for every engine
    out: Optional[Path] = None
    weights: str = "pretrained"
    seed: int = 0
    images: Optional[Path] = None
    dataset: Optional[Path] = None  # labelled data: task accuracy per engine
    limit: Optional[int] = None  # the first N images of the dataset
    input_size: Optional[Tuple[int, int]] = None
    opset: int = 17
    launcher: str = "auto"
    timeout: float = 1800.0
    cv_threshold: float = 0.05  # rows whose latency CV exceeds it are flagged noisy
    cache_dir: Path = field(default_factory=default_cache)

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
            if getattr(self, name) < 1:
                raise UsageError(f"--{name} must be at least 1")
        if self.images is not None and self.dataset is not None:
            raise UsageError("--images and --dataset both name the test images: give one")
        if self.warmup < 0 or self.min_time < 0 or self.timeout <= 0:
            raise UsageError("--warmup and --min-time must be >= 0, --timeout > 0")
        if self.launcher not in ("auto", "venv", "docker"):
            raise UsageError(f"unknown launcher {self.launcher!r}; valid: auto, venv, docker")


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

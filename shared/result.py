"""RunResult: what a runner did, written as `result.json` beside `outputs.npz` and the log."""
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from .errors import one_line
from .records import Record
from .spec import SCHEMA_VERSION
from .stats import p50_interval, robust_cv

STATUSES = ("ok", "unsupported", "failed", "timeout", "skipped")
STAGES = ("setup", "load", "convert", "compile", "run")
# The precision of an ok row whose runner never set one: it did not read back what the engine ran
# at, and the precision asked is not a fact about what ran
NOT_READ_BACK = "not read back"


@dataclass
class Latency(Record):
    """Latency statistics in milliseconds; build it with `Latency.from_values`."""

    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    count: int
    cv: float  # coefficient of variation, std / mean
    # the 95% confidence interval of p50, [low, high] (shared.stats.p50_interval); empty under 6 samples
    p50_ci95: List[float] = field(default_factory=list)
    # 1.4826 MAD / median around each input's own median, pooled (shared.stats.robust_cv)
    robust_cv: float = 0.0

    @classmethod
    def from_values(cls, values_ms: Sequence[float], inputs: Optional[Sequence[int]] = None) -> "Latency":
        """Statistics of per-call latencies; `inputs` gives each call's input index, so that
        the robust spread is taken around each input's own median."""
        if not values_ms:
            raise ValueError("no latency samples")
        xs = sorted(float(v) for v in values_ms)
        n = len(xs)
        mean = sum(xs) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
        groups = inputs if inputs is not None else [0] * n
        ci = p50_interval(values_ms, groups)
        return cls(
            mean=mean, std=std, min=xs[0], max=xs[-1], count=n,
            p50=_percentile(xs, 50), p90=_percentile(xs, 90), p95=_percentile(xs, 95),
            p99=_percentile(xs, 99), cv=std / mean if mean > 0 else 0.0,
            p50_ci95=list(ci) if ci else [],
            robust_cv=robust_cv(values_ms, groups),
        )

    def ci_halfwidth(self) -> Optional[float]:
        """Half the 95% interval of p50, relative to p50 (None when too few samples)."""
        if len(self.p50_ci95) != 2 or self.p50 <= 0:
            return None
        return (self.p50_ci95[1] - self.p50_ci95[0]) / 2 / self.p50


def _percentile(sorted_xs: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    pos = (len(sorted_xs) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


@dataclass
class ErrorInfo(Record):
    type: str
    message: str
    operator: Optional[str] = None
    node: Optional[str] = None


@dataclass
class Measurement(Record):
    """How the timed loop ran and why it stopped, with every timed call kept."""

    # converged: the median known to +-target_ci; budget: max_time_s spent first; count: the
    # fixed --iterations (and --min-time) reached
    stop: str
    target_ci: Optional[float]  # relative half-width of p50's 95% interval asked for; None: fixed count
    warmup_calls: int  # untimed calls after the first inference
    warmup_s: float
    timed_s: float  # wall time of the timed loops
    gc: str  # what was done to Python's garbage collector around the timed loops
    latencies_ms: List[float] = field(default_factory=list)  # every timed call, in order
    input_index: List[int] = field(default_factory=list)  # the input each call ran on


@dataclass
class Resources(Record):
    peak_rss_mb: float  # whole runner process lifetime (load and compile included)
    cpu_util_percent: float  # (user + system CPU time) / wall time over the timed loop
    gpu: Dict[str, float] = field(default_factory=dict)  # peak memory, utilisation, power
    load_peak_rss_mb: Optional[float] = None  # high-water mark up to the end of load/compile
    steady_peak_rss_mb: Optional[float] = None  # high-water mark over the timed loops alone
    # minor page faults over the timed calls, a call's share: memory an allocator gave back to the OS
    # and touched again (each a trap and a zeroed page: faster_rcnn's ~450 thousand cost 0.67 s a call here)
    page_faults_per_call: Optional[float] = None


@dataclass
class RunResult(Record):
    engine: str
    status: str
    engine_version: str = ""
    stage: Optional[str] = None  # where a non-ok run stopped
    reason: str = ""  # one line: why it is not ok
    error: Optional[ErrorInfo] = None
    # what the engine actually ran at (one of spec.PRECISIONS), read back where it can say;
    # NOT_READ_BACK on an ok row whose runner did not set it; "" on a row that ended before it was known
    precision: str = ""
    # how that precision is spread over the graph, as the engine reports it: the share of ops or
    # weights at the lower precision, the per-layer mix (e.g. {"int8_kernel_nodes": 53, "nodes": 60})
    precision_detail: Dict[str, Any] = field(default_factory=dict)
    # setup (engine import, inputs) / load / convert / compile / run (every engine call)
    stage_seconds: Dict[str, float] = field(default_factory=dict)
    first_inference_ms: Optional[float] = None
    latency_ms: Optional[Latency] = None  # over every timed call of every repeat
    per_input_ms: Dict[str, Latency] = field(default_factory=dict)  # the same per input index
    measurement: Optional[Measurement] = None
    repeat_p50_ms: List[float] = field(default_factory=list)  # each repeat's median, with --repeats
    # median ms per phase where the runner can split a call (pre-processing / inference /
    # post-processing of a torchvision detector), measured on untimed warm-up calls
    breakdown_ms: Dict[str, float] = field(default_factory=dict)
    throughput_per_s: Optional[float] = None  # samples (not calls) per second
    scenario: str = "latency"  # the spec's: how the timed loop drove the engine
    batch_size: int = 1  # samples per call
    # requests kept in flight (the throughput scenario; 1 in the latency scenario), as run
    concurrency: int = 1
    # what the engine really overlapped: the sum of the calls' latencies over the loops' wall time
    # (Little's law); below `concurrency` when submissions, not the engine, were the bottleneck
    achieved_concurrency: Optional[float] = None
    resources: Optional[Resources] = None
    settings: Dict[str, Any] = field(default_factory=dict)  # effective settings read back
    environment: Dict[str, Any] = field(default_factory=dict)
    copy_policy: str = "inside"  # host<->device copies are inside the timed region
    outputs_file: Optional[str] = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError("status must be one of {}, got {!r}".format(", ".join(STATUSES), self.status))
        if self.stage is not None and self.stage not in STAGES:
            raise ValueError("stage must be one of {}, got {!r}".format(", ".join(STAGES), self.stage))
        if self.status == "ok" and self.latency_ms is None:
            raise ValueError("an ok result needs latency_ms")

    @classmethod
    def from_error(cls, engine: str, error: BaseException, stage: Optional[str] = None,
                   **fields: Any) -> "RunResult":
        status = getattr(error, "status", "failed")
        info = ErrorInfo(type=type(error).__name__, message=str(error),
                         operator=getattr(error, "operator", None), node=getattr(error, "node", None))
        return cls(engine=engine, status=status, stage=stage, reason=one_line(error), error=info, **fields)


"""`e2e compare RUN_A RUN_B`: per (engine, precision), what changed from A to B.

A slower p50 is a regression only when it is beyond the threshold *and* significant: the 95%
bootstrap interval of the ratio of medians (B over A), taken on every timed call, lies above 1.
Where both runs were interleaved, an engine is judged by its time relative to the reference
(its paired ratio within each run) instead: absolute times carry the machine's drift between
the two runs, which the ratios cancel.
"""
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from coordinator.engines import REFERENCE
from coordinator.report.document import Report, Row

RESAMPLES = 2000
MAX_SAMPLES = 2000  # per side; more only narrows an interval already narrow, at O(n) per resample
SEED = 0  # fixed: the same two runs always give the same interval and the same verdict
NOT_SIGNIFICANT = "not significant"
NO_SAMPLES = "threshold only: no samples"


@dataclass
class Change:
    engine: str
    precision: str
    status_a: str
    status_b: str
    p50_a: Optional[float]
    p50_b: Optional[float]
    parity_a: str
    parity_b: str
    regression: str  # why this is a regression, or ""
    ratio_ci: Optional[Tuple[float, float]] = None  # 95% bootstrap interval of p50 B / p50 A
    # both runs interleaved: the speed-up over the reference in A and in B (paired within each run),
    # and the interval of B's time relative to the reference over A's
    speedup_a: Optional[float] = None
    speedup_b: Optional[float] = None
    relative_ci: Optional[Tuple[float, float]] = None
    note: str = ""  # how the speed verdict was reached, where it is not plain: NOT_SIGNIFICANT, NO_SAMPLES

    @property
    def p50_change(self) -> Optional[float]:
        return self.p50_b / self.p50_a - 1 if self.p50_a and self.p50_b else None

    @property
    def relative_change(self) -> Optional[float]:
        """B's time relative to the reference over A's, minus one (both runs interleaved)."""
        return self.speedup_a / self.speedup_b - 1 if self.speedup_a and self.speedup_b else None


def compare_runs(a: Report, b: Report, threshold: float) -> List[Change]:
    """Rows matched by (engine, precision asked); a regression is a significantly slower p50
    beyond `threshold` (a fraction), parity that stopped passing, or an ok row that no longer is."""
    before = {_key(r): r for r in a.results}
    changes = []
    for r in b.results:
        old = before.pop(_key(r), None)
        changes.append(_change(old, r, threshold))
    changes += [_change(old, None, threshold) for old in before.values()]
    return changes


def differences(a: Report, b: Report) -> List[str]:
    """What makes the two runs not comparable, one line each: the model, device and threads of
    the whole run, a run made under fault injection, then each engine whose version changed.
    Empty when nothing differs."""
    setup = [("model sha256", a.model.sha256, b.model.sha256),
             ("device", a.setup.setting("device"), b.setup.setting("device")),
             ("threads", a.setup.setting("threads"), b.setup.setting("threads"))]
    differ = [f"{name} ({_text(x)} vs {_text(y)})" for name, x, y in setup if x != y]
    lines = ["the runs differ in " + ", ".join(differ)] if differ else []
    lines += [f"run {name}: {r.fault_headline()}" for name, r in (("A", a), ("B", b)) if r.fault_headline()]
    before = {_key(r): r for r in a.results}
    for r in b.results:
        old = before.get(_key(r))
        # an empty version is a row that stopped before the runner could say, not a change
        if old and old.engine_version and r.engine_version and old.engine_version != r.engine_version:
            lines.append(f"{r.engine}: engine version {old.engine_version} vs {r.engine_version}")
    return list(dict.fromkeys(lines))  # one line per engine, not one per precision


def ratio_ci(a_ms: Sequence[float], b_ms: Sequence[float]) -> Tuple[float, float]:
    """The 95% percentile-bootstrap interval of median(B) / median(A), each side resampled on
    its own (the runs are independent)."""
    rng = np.random.default_rng(SEED)
    ratios = _boot_medians(b_ms, rng) / _boot_medians(a_ms, rng)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def _boot_medians(values: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """The medians of RESAMPLES resamples with replacement, vectorised in chunks (bounded memory)."""
    x = np.asarray(values, dtype=float)
    if len(x) > MAX_SAMPLES:
        # every k-th call, deterministically: drift across the run stays represented; the
        # interval comes out a little wider than the full set's would be (conservative)
        x = x[np.linspace(0, len(x) - 1, MAX_SAMPLES).round().astype(int)]
    chunks = []
    for start in range(0, RESAMPLES, 500):  # 500 resamples of 2000 at a time: 8 MB
        picks = rng.integers(0, len(x), size=(min(500, RESAMPLES - start), len(x)))
        chunks.append(np.median(x[picks], axis=1))
    return np.concatenate(chunks)


def _change(old: Optional[Row], new: Optional[Row], threshold: float) -> Change:
    some = new or old
    assert some is not None
    p50 = lambda r: r.latency_ms.p50 if r and r.latency_ms else None  # noqa: E731
    where = " ".join(p for p in (some.precision_requested, some.point().label()) if p)
    c = Change(some.engine, where, old.status if old else "absent",
               new.status if new else "absent", p50(old), p50(new),
               old.verdict() if old else "", new.verdict() if new else "", "")
    reasons = []
    if c.status_a == "ok" and c.status_b != "ok":
        reasons.append(f"was ok, now {c.status_b}")
    a_ref = old.rounds.vs_reference if old and old.rounds and not old.is_reference() else None
    b_ref = new.rounds.vs_reference if new and new.rounds and not new.is_reference() else None
    if a_ref is not None and b_ref is not None and b_ref.low > 0:
        c.speedup_a, c.speedup_b = a_ref.value, b_ref.value
        c.relative_ci = (a_ref.low / b_ref.high, a_ref.high / b_ref.low)
        rel = c.relative_change or 0.0
        if rel > threshold and c.relative_ci[0] > 1:
            reasons.append(f"time relative to {REFERENCE} {rel:+.1%}")
        elif rel > threshold:
            c.note = NOT_SIGNIFICANT
        if c.p50_change is not None and abs(c.p50_change) > threshold and abs(rel) <= threshold:
            c.note = (f"p50 moved {c.p50_change:+.1%} but the ratio to {REFERENCE} {rel:+.1%}: "
                      "the machine drifted, not the engine")
    elif c.p50_change is not None:
        samples_a, samples_b = _samples(old), _samples(new)
        a_p50 = old.rounds.p50_ms if old and old.rounds else None
        b_p50 = new.rounds.p50_ms if new and new.rounds else None
        if a_p50 is not None and b_p50 is not None and a_p50.known() and b_p50.known() and a_p50.low > 0:
            c.ratio_ci = (b_p50.low / a_p50.high, b_p50.high / a_p50.low)  # interleaved: p50s over rounds
        elif samples_a and samples_b:
            c.ratio_ci = ratio_ci(samples_a, samples_b)
        else:
            c.note = NO_SAMPLES  # an older report: the threshold alone decides
        if c.p50_change > threshold:
            if c.ratio_ci is None or c.ratio_ci[0] > 1:
                reasons.append(f"p50 {c.p50_change:+.1%}")
            else:  # beyond the threshold, but within what noise alone gives
                c.note = NOT_SIGNIFICANT
    if c.parity_a == "passed" and c.parity_b == "FAILED":
        reasons.append("parity now fails")
    c.regression = "; ".join(reasons)
    return c


def _samples(r: Optional[Row]) -> List[float]:
    """Every timed call of a row; empty for reports written before they were kept."""
    return r.measurement.latencies_ms if r and r.measurement else []


def _key(r: Row) -> tuple:
    return r.key()  # engine, precision asked and the sweep point: a sweep compares point by point


def _text(value: Any) -> str:
    """A setting for a warning line; a sha256 shortened to what a reader can tell apart."""
    if value is None:
        return "unknown"
    text = str(value)
    return text[:12] + "…" if len(text) == 64 else text

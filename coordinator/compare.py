"""`e2e compare RUN_A RUN_B`: per (engine, precision), what changed from A to B."""
from dataclasses import dataclass
from typing import List, Optional

from .report import Report, Row


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

    @property
    def p50_change(self) -> Optional[float]:
        return self.p50_b / self.p50_a - 1 if self.p50_a and self.p50_b else None


def compare_runs(a: Report, b: Report, threshold: float) -> List[Change]:
    """Rows matched by (engine, precision asked); a regression is a slower p50 beyond
    `threshold` (a fraction), parity that stopped passing, or an ok row that no longer is."""
    def key(r: Row) -> tuple:
        return r.engine, r.precision_requested

    before = {key(r): r for r in a.results}
    changes = []
    for r in b.results:
        old = before.pop(key(r), None)
        changes.append(_change(old, r, threshold))
    changes += [_change(old, None, threshold) for old in before.values()]
    return changes


def _change(old: Optional[Row], new: Optional[Row], threshold: float) -> Change:
    some = new or old
    assert some is not None
    p50 = lambda r: r.latency_ms.p50 if r and r.latency_ms else None  # noqa: E731
    c = Change(some.engine, some.precision_requested, old.status if old else "absent",
               new.status if new else "absent", p50(old), p50(new),
               old.verdict() if old else "", new.verdict() if new else "", "")
    reasons = []
    if c.status_a == "ok" and c.status_b != "ok":
        reasons.append(f"was ok, now {c.status_b}")
    if c.p50_change is not None and c.p50_change > threshold:
        reasons.append(f"p50 {c.p50_change:+.1%}")
    if c.parity_a == "passed" and c.parity_b == "FAILED":
        reasons.append("parity now fails")
    c.regression = "; ".join(reasons)
    return c

"""The points of a sweep: (scenario, batch, concurrency), one row each per engine and precision.

`--scenario latency,throughput --batch 1,4 --concurrency 1,2` gives latency at batch 1 and 4
(one request at a time) and throughput at each batch with 1 and 2 requests in flight. A
concurrency is a count, `engine` (the engine's own choice: OpenVINO's optimal number of infer
requests, else one request per thread of the budget) or `auto` (1, 2, 4, ... until samples/s
stop rising by GROWTH, as perf_analyzer and Model Analyzer search).
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence

from shared import scenarios as registry

from coordinator.errors import UsageError

ENGINE, AUTO = "engine", "auto"
GROWTH = 1.05  # auto: the next doubling must add at least 5% samples/s
AUTO_MAX = 64  # auto: requests in flight at most


@dataclass(frozen=True)
class Point:
    scenario: str = "latency"
    batch: int = 1
    concurrency: str = "1"  # as asked: a count, ENGINE, or a count found by AUTO ("auto:4")

    def key(self) -> tuple:
        """What identifies the point among a row's keys (with engine and precision)."""
        return self.scenario, self.batch, self.concurrency

    @property
    def in_flight(self) -> int:
        """The spec's concurrency: 0 asks the engine."""
        if self.concurrency == ENGINE:
            return 0
        return int(self.concurrency.rpartition(":")[2])

    @property
    def concurrent(self) -> bool:
        """Whether its scenario keeps requests in flight (shared/scenarios/), so takes a concurrency;
        a scenario this version does not know (a later report's) has none."""
        found = registry.REGISTRY.get(self.scenario)
        return found is not None and found.concurrent

    def label(self) -> str:
        """"" for the default point (latency, batch 1), else e.g. "throughput b4 c2"."""
        if self == Point():
            return ""
        return registry.declared(self.scenario).point_label(self.batch, self.concurrency)  # the scenario's own words

    def folder(self) -> str:
        """The suffix of the row's log folder."""
        return "-" + self.label().replace(" ", "-").replace(":", "").replace("=", "") if self.label() else ""


def check(scenarios: Sequence[str], batches: Sequence[int], concurrency: Sequence[str]) -> None:
    """One clear error for a bad value of --scenario, --batch or --concurrency."""
    bad = [s for s in scenarios if s not in registry.REGISTRY]  # every module of shared/scenarios/
    if bad or not scenarios:
        raise UsageError(f"--scenario: unknown {', '.join(bad) or '(none)'}; valid: {', '.join(registry.REGISTRY)}")
    if not batches or any(b < 1 for b in batches):
        raise UsageError("--batch: give batch sizes >= 1, e.g. 1,4,8")
    for c in concurrency:
        if c not in (ENGINE, AUTO) and not (c.isdigit() and int(c) >= 1):
            raise UsageError(f"--concurrency: {c!r} is not a count >= 1, '{ENGINE}' or '{AUTO}'")
    if not concurrency:
        raise UsageError(f"--concurrency: give counts, '{ENGINE}' or '{AUTO}'")


def points(scenarios: Sequence[str], batches: Sequence[int], concurrency: Sequence[str]) -> List[Point]:
    """Every point of the sweep, in the order of `scenarios`; a scenario without requests in flight
    gets one point per batch, and an AUTO concurrency starts at 1 (bench grows it)."""
    out = []
    for scenario in dict.fromkeys(scenarios):
        for batch in dict.fromkeys(batches):
            counts = ["1"] if not registry.get(scenario).concurrent else [f"{AUTO}:1" if c == AUTO else c
                                                                           for c in dict.fromkeys(concurrency)]
            out += [Point(scenario, batch, c) for c in counts]
    return out


def grown(point: Point, throughput: Optional[float], best: Optional[float]) -> Optional[Point]:
    """AUTO: the next point (twice the requests) while the last one raised samples/s by GROWTH
    over the best before it; None once they stopped rising (or the row failed)."""
    if not point.concurrency.startswith(AUTO) or throughput is None:
        return None
    if best is not None and throughput < best * GROWTH:
        return None
    n = point.in_flight * 2
    return Point(point.scenario, point.batch, f"{AUTO}:{n}") if n <= AUTO_MAX else None

"""The interleaved rounds: every loaded row timed in turn, a short slice each, round after round.

First, every row gets one untimed warm-up slice (see `_warm`).

A round gives each row one slice, in an order that rotates from round to round, starting at
the same test input for every row (so a round's slices are paired, input for input). A slice
is enough calls to fill `slice_s` (a whole number of passes over the inputs when a pass fits),
at least one. The rounds stop when every row's ratios to the reference and to the fastest row
are known to +-target after `MIN_ROUNDS` (converged), when each row has made `calls` calls
(count, --iterations), or when the budget of timed seconds is spent (budget). One more round
then ends the run, with the caching audit: after its slice each row times the same input
repeated, twice, then the inputs rotated again (`_audit`); a row much faster on the repeated
input may be reusing results (not with --iterations, which asks for an exact count of calls).
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from coordinator.launchers.session import Session
from coordinator.run.round_stats import MIN_ROUNDS, Rounds, combine, known, median, summarise, trimmed_mean


@dataclass
class Slot:
    """One loaded runner in the rounds: a row's process."""

    key: str  # the process's label, unique in the run (a row's first process: the row's label)
    session: Session
    per_call_ms: float  # from warm-up, then from the slices
    values: List[Optional[float]] = field(default_factory=list)  # each round's median
    calls: int = 0
    timed_s: float = 0.0
    waits: List[tuple] = field(default_factory=list)  # (waited_s, waiting_cpu_s)
    settles: List[float] = field(default_factory=list)
    audit: Optional[float] = None
    error: Optional[BaseException] = None  # its session broke mid-rounds: its row says so
    kept: Optional[Rounds] = None  # the reference timed in several groups: its first group's figures
    launch: Any = None  # the row's Launch (coordinator/run/launch.py)
    started: float = 0.0  # when its runner was started (the wall clock)
    partner: bool = False  # the reference loaded only to pair with: no row of its own
    row: str = ""  # the row's label (several processes of a row share it); the key when empty
    copy: int = 1  # which of the row's processes: only the first ends in the row

    def row_key(self) -> str:
        return self.row or self.key

    def slice_calls(self, slice_s: float, inputs: int) -> int:
        want = max(1, round(slice_s * 1e3 / max(self.per_call_ms, 1e-3)))
        return max(1, round(want / inputs)) * inputs if want >= inputs else want

    def add(self, reply: dict) -> None:
        lat = reply["latencies_ms"]
        self.values.append(median(lat) if lat else None)
        self.calls += len(lat)
        self.timed_s += reply["wall_s"]
        if lat:
            self.per_call_ms = reply["wall_s"] * 1e3 / len(lat)
        self.waits.append((reply["waited_s"], reply["waiting_cpu_s"]))
        self.settles.append(reply["settle_ms"])


@dataclass
class Plan:
    """How the rounds run (from the bench's configuration)."""

    inputs: int  # test inputs
    slice_s: float = 0.5
    target: float = 0.02
    budget_s: float = 60.0  # timed seconds for the whole group
    calls: Optional[int] = None  # --iterations: each row makes at least this many calls
    reference: Optional[str] = None  # the reference row's key, when it is in the group


def run_rounds(slots: List[Slot], plan: Plan, progress: Callable[[str], None] = lambda _: None,
               stopped: Callable[[], bool] = lambda: False) -> Dict[str, Rounds]:
    """Time `slots` in rounds until the plan's stop rule holds; each row's `Rounds` (by row key).
    The stop rule reads the rounds alone: more rounds cannot narrow the gap between processes."""
    stop, r = "", 0
    _warm(slots, plan)
    live = [s for s in slots if s.error is None]
    while live and not stop:
        _round(live, r, plan)
        live = [s for s in live if s.error is None]
        r += 1
        figures = summarise(combine(_by_row(live))[0], plan.reference, plan.target)
        timed = sum(s.timed_s for s in slots)
        if plan.calls is not None:
            stop = "count" if all(s.calls >= plan.calls for s in live) else ""
        elif r >= MIN_ROUNDS and all(known(f, plan.target) for f in figures.values()):
            stop = "converged"
        elif timed >= plan.budget_s:
            stop = "budget"
        if stopped():
            raise KeyboardInterrupt
        worst = max((_width(f) for f in figures.values()), default=0.0)
        progress(f"round {r}: {timed:.0f}/{plan.budget_s:.0f} s timed, widest ratio interval ±{worst:.1%} "
                 f"(target ±{plan.target:.0%})")
    if live and plan.calls is None:  # --iterations asks for that many calls: no more
        _round(live, r, plan, audit=True)
        live = [s for s in live if s.error is None]
    values, spread = combine(_by_row(live))
    counts = {row: len(runs) for row, runs in _by_row(live).items()}
    figures = summarise(values, plan.reference, plan.target, counts, spread)
    for row, runs in _by_row(live).items():
        if len(runs) > 1:
            figures[row].process_p50_ms = [float(trimmed_mean(np.asarray([v for v in run if v is not None])))
                                           for run in runs if any(v is not None for v in run)]
            figures[row].process_round_p50_ms = [list(run) for run in runs]
    for s in live:
        if s.copy > 1:
            continue
        f = figures[s.row_key()]
        f.stop = stop if stop != "converged" or known(f, plan.target) else "budget"
        waited = [w for w, _ in s.waits if w > 0]
        cpu = [100.0 * c / w for w, c in s.waits if w > 0]
        f.waiting_cpu_percent = 100.0 * sum(c for _, c in s.waits) / sum(waited) if waited else 0.0
        f.waiting_cpu_max_percent = max(cpu, default=0.0)
        f.settle_ms = median(s.settles) if s.settles else 0.0
        f.repeated_over_rotated = s.audit
    return figures


def _by_row(slots: List[Slot]) -> Dict[str, List[List[Optional[float]]]]:
    """Each row's processes' round values; a row whose first process has left keeps none."""
    rows: Dict[str, List[List[Optional[float]]]] = {}
    firsts = {s.row_key() for s in slots if s.copy == 1}
    for s in slots:
        if s.row_key() in firsts:
            rows.setdefault(s.row_key(), []).append(s.values)
    return rows


def _round(slots: List[Slot], r: int, plan: Plan, audit: bool = False) -> None:
    """One slice each, in an order rotated by the round, every row starting at the same input."""
    start = r % plan.inputs
    order = slots[r % len(slots):] + slots[:r % len(slots)]
    for slot in order:
        calls = slot.slice_calls(plan.slice_s, plan.inputs)
        if plan.calls is not None and not audit:  # --iterations: exactly that many calls in all
            calls = min(calls, plan.calls - slot.calls)
            if calls <= 0:
                slot.values.append(None)  # rounds stay aligned
                continue
        try:
            reply = slot.session.time(calls, start, timeout=_patience(slot, calls))
            slot.add(reply)
            if audit:
                slot.audit = _audit(slot, reply, calls, start)
        except Exception as e:  # a runner that dies or hangs mid-rounds ends its own row only
            slot.error = e


def _audit(slot: Slot, rotated_slice: Dict[str, Any], calls: int, start: int) -> Optional[float]:
    """MLPerf's caching audit, paired against the machine's drift: after the round's slice (the
    inputs rotated), the round's input repeated in two slices, then the inputs rotated once more
    (untimed for the row): A B B A, so that a drift within the audit hits both sides alike (one
    rotated and one repeated slice flagged PyTorch eager, which caches nothing, at 0.70x on a
    drifting VM). The median over the repeated calls / over the rotated calls of that input."""
    repeated: List[float] = []
    for _ in range(2):
        repeated += slot.session.time(calls, start, repeat=True, timeout=_patience(slot, calls))["latencies_ms"]
    again = slot.session.time(calls, start, warm=True, timeout=_patience(slot, calls))
    rotated = [x for reply in (rotated_slice, again) for x, i in zip(reply["latencies_ms"], reply["input_index"])
               if i == start]
    return median(repeated) / median(rotated) if rotated and repeated else None


def _warm(slots: List[Slot], plan: Plan) -> None:
    """A warm-up slice each, untimed, before the first round: a row loaded first has waited while
    the others loaded (minutes, environments made meanwhile), and its code and data may have
    left the caches and memory; its first timed calls would pay for that."""
    for slot in slots:
        try:
            calls = slot.slice_calls(plan.slice_s, plan.inputs)
            slot.session.time(calls, 0, warm=True, timeout=_patience(slot, calls))
        except Exception as e:
            slot.error = e


def _patience(slot: Slot, calls: int) -> float:
    """How long a slice may take before its runner is given up: ten times the expected, and a minute."""
    return min(slot.session.timeout, 60.0 + 10 * calls * slot.per_call_ms / 1e3)


def _width(f: Rounds) -> float:
    widths = [e.halfwidth() for e in (f.vs_reference, f.vs_fastest) if e is not None and e.rounds > 1]
    return max(widths, default=0.0)

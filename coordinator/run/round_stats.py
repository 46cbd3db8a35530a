"""Statistics over interleaved rounds: what a row's figures are, and how well they are known.

Every loaded row gets a slice of timed calls in each round, on the same inputs. A round's
value for a row is the median of its slice. Drift between rounds is mostly common to every row
(the machine, not the engine), so:
- a row's p50 is the 20%-trimmed mean of its round values: robust to a stray round, and smooth
  where a shared machine flips between states (measured here: a row's rounds at 28 or at 35 ms
  for a minute at a time), where a median jumps from one state to the other as their share
  changes;
- its interval is a moving-block bootstrap over rounds (blocks of about sqrt(rounds)
  consecutive rounds: the machine's states last many rounds, and rounds resampled one by one
  would treat them as independent), never narrower than the gap between the values of the
  run's two halves (two half-runs: the run-to-run variation the run itself saw);
- comparisons are paired: in each round, one row's value over another's, estimated the same way.
  A ratio cancels the drift that is common to both rows; an engine that a machine state slows
  more than another keeps a ratio that depends on the state, and the interval shows it;
- a process is not the same as another: the same row in two runner processes, timed in the same
  rounds, kept a gap of a few % (measured here: every ratio of a run moved 3-7% the same way,
  the reference's process alone had run faster). No schedule inside one process sees that, so
  the reference runs in two processes at least (any row may, --processes). A row's round value
  is the geometric mean over its processes; the spread between processes, pooled over the rows
  that have several, is a floor under every interval (a row's own process, and the rows it is
  compared to, each add it).
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from shared.records import Record

RESAMPLES = 2000
Z95 = 1.96
MIN_ROUNDS = 10  # before a stop: fewer rounds say little about the drift between them
TRIM = 0.2  # the share of rounds dropped at each end of a trimmed mean
AUDIT_FLAG = 0.9  # the caching audit: repeated / rotated under this is flagged


@dataclass
class Estimate(Record):
    """A figure over rounds (a trimmed mean) with its 95% interval."""

    value: float
    low: float
    high: float
    rounds: int = 0

    def known(self) -> bool:
        """Whether there is an interval: two rounds at least."""
        return self.rounds >= 2

    def halfwidth(self) -> float:
        """Half the interval relative to the value (inf when unknown)."""
        return (self.high - self.low) / 2 / self.value if self.value > 0 and self.known() else math.inf

    def crosses(self, x: float) -> bool:
        return self.low <= x <= self.high

    def widen(self, halfwidth: float) -> None:
        """At least +-halfwidth (relative, on a log scale) around the value."""
        if halfwidth > 0 and self.value > 0:
            self.low = min(self.low, self.value * math.exp(-halfwidth))
            self.high = max(self.high, self.value * math.exp(halfwidth))

    def text(self, digits: int = 2, unit: str = "") -> str:
        interval = f"{self.low:.{digits}f}–{self.high:.{digits}f}" if self.known() else "?: one round"
        return f"{self.value:.{digits}f}{unit} [{interval}]"


@dataclass
class Rounds(Record):
    """What the interleaved rounds measured for one row."""

    # each round's median of this row's slice, in ms; None for a round the row had no slice in
    round_p50_ms: List[Optional[float]] = field(default_factory=list)
    group: int = 0  # rows loaded together (memory allowing) are one group; each holds the reference
    p50_ms: Optional[Estimate] = None
    # speed-up over the reference (PyTorch, fp32), paired per round: reference / this row
    vs_reference: Optional[Estimate] = None
    # time over the fastest row's of the group, paired per round (1 for the fastest)
    vs_fastest: Optional[Estimate] = None
    fastest: str = ""  # the row vs_fastest is taken against
    stop: str = ""  # converged: every ratio known to +-target; budget: the time ran out first; count
    target: float = 0.02
    paired_spread: float = 0.0  # robust spread of the per-round ratio this row is judged by
    drift: float = 0.0  # robust spread of the absolute round values: the machine's drift, mostly
    waiting_cpu_percent: float = 0.0  # CPU used while other rows were timed, % of one core (mean)
    waiting_cpu_max_percent: float = 0.0  # the same, the worst wait
    settle_ms: float = 0.0  # median wait after a slice for the runner's own threads to go quiet
    processes: int = 1  # runner processes the row was timed in (its round value: their geometric mean)
    # the spread of one process's figure, pooled over the run's rows with several (relative, one
    # standard deviation): a floor under every interval
    process_spread: float = 0.0
    process_p50_ms: List[float] = field(default_factory=list)  # each process's trimmed mean, with several
    process_round_p50_ms: List[List[Optional[float]]] = field(default_factory=list)  # each process's rounds, with several
    # the caching audit (MLPerf's): the median over the same input repeated / over the inputs
    # rotated, input for input; under 0.9 the engine may be reusing results
    repeated_over_rotated: Optional[float] = None


def median(xs: Sequence[float]) -> float:
    return float(np.median(np.asarray(xs, dtype=float)))


def trimmed_mean(xs: np.ndarray, cut: float = TRIM) -> np.ndarray:
    """The mean of the middle values (a `cut` share dropped at each end), along the last axis."""
    xs = np.sort(xs, axis=-1)
    k = int(math.floor(cut * xs.shape[-1]))
    return np.mean(xs[..., k:xs.shape[-1] - k], axis=-1)


def estimate(values: Sequence[Optional[float]], seed: int = 0) -> Optional[Estimate]:
    """The trimmed mean of per-round values, with a moving-block bootstrap 95% interval widened
    to the trimmed means of the first and second half of the rounds."""
    xs = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(xs) == 0:
        return None
    mid = float(trimmed_mean(xs))
    if len(xs) < 2:
        return Estimate(mid, mid, mid, 1)
    n = len(xs)
    block = max(1, int(math.ceil(math.sqrt(n))))
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - block + 1, size=(RESAMPLES, int(math.ceil(n / block))))
    picks = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(RESAMPLES, -1)[:, :n]
    low, high = (float(v) for v in np.percentile(trimmed_mean(xs[picks]), [2.5, 97.5]))
    half = n // 2
    halves = [float(trimmed_mean(xs[:half])), float(trimmed_mean(xs[half:]))]
    return Estimate(mid, min(low, *halves), max(high, *halves), n)


def paired(numerator: Sequence[Optional[float]], denominator: Sequence[Optional[float]]) -> List[float]:
    """Per-round ratios where both rows had a slice."""
    return [a / b for a, b in zip(numerator, denominator) if a is not None and b is not None and b > 0]


def robust_spread(values: Sequence[float]) -> float:
    """1.4826 x the median absolute deviation over the median."""
    xs = np.asarray([v for v in values if v is not None], dtype=float)
    if len(xs) < 2:
        return 0.0
    mid = np.median(xs)
    return float(1.4826 * np.median(np.abs(xs - mid)) / mid) if mid > 0 else 0.0


def combine(processes: Dict[str, List[List[Optional[float]]]]) -> Tuple[Dict[str, List[Optional[float]]], float]:
    """Each row's round values (the geometric mean over its processes' values in that round), and
    the spread between processes: the standard deviation of a process's log offset from its row
    (the trimmed mean over rounds), pooled over the rows with several processes; 0 without any."""
    values: Dict[str, List[Optional[float]]] = {}
    squares, freedom = 0.0, 0
    for row, runs in processes.items():
        combined = []
        for rnd in zip(*runs):
            ok = [v for v in rnd if v is not None and v > 0]
            combined.append(float(np.exp(np.mean(np.log(ok)))) if len(ok) == len(rnd) else None)
        values[row] = combined
        if len(runs) < 2:
            continue
        offsets = []
        for run in runs:
            logs = [math.log(v / c) for v, c in zip(run, combined) if v is not None and c is not None]
            if logs:
                offsets.append(float(trimmed_mean(np.asarray(logs))))
        if len(offsets) >= 2:
            squares += sum(o * o for o in offsets)  # offsets sum to about zero: one degree used
            freedom += len(offsets) - 1
    return values, math.sqrt(squares / freedom) if freedom else 0.0


def summarise(values: Dict[str, List[Optional[float]]], reference: Optional[str], target: float,
              processes: Optional[Dict[str, int]] = None, process_spread: float = 0.0) -> Dict[str, Rounds]:
    """Each row's figures from every row's round values (one group, rounds aligned). With
    `process_spread`, every interval is at least what a process alone can move its figure by:
    a row in n processes adds spread/sqrt(n), and a ratio adds both rows' shares."""
    out: Dict[str, Rounds] = {}
    processes = processes or {}
    reference = reference if reference in values else None  # it may have left the rounds (its runner died)
    p50 = {k: estimate(v) for k, v in values.items()}
    known = {k: e for k, e in p50.items() if e is not None}
    fastest = min(known, key=lambda k: known[k].value) if known else ""
    for key, rounds in values.items():
        r = Rounds(round_p50_ms=list(rounds), p50_ms=p50[key], target=target, fastest=fastest,
                   drift=robust_spread([v for v in rounds if v is not None]))
        if reference is not None and reference in values:
            r.vs_reference = estimate(paired(values[reference], rounds))
        if fastest:
            r.vs_fastest = estimate(paired(rounds, values[fastest]))
        partner = reference if reference not in (None, key) else (fastest if fastest != key else None)
        if partner is not None:
            r.paired_spread = robust_spread(paired(rounds, values[partner]))
        else:
            r.paired_spread = r.drift
        r.processes, r.process_spread = processes.get(key, 1), process_spread
        if process_spread > 0:
            share = {k: process_spread ** 2 / processes.get(k, 1) for k in (key, reference, fastest) if k}
            if r.p50_ms is not None:
                r.p50_ms.widen(Z95 * math.sqrt(share[key]))
            if r.vs_reference is not None and key != reference:
                r.vs_reference.widen(Z95 * math.sqrt(share[key] + share[reference]))
            if r.vs_fastest is not None and key != fastest:
                r.vs_fastest.widen(Z95 * math.sqrt(share[key] + share[fastest]))
        out[key] = r
    return out


def known(rounds: Rounds, target: float) -> bool:
    """Whether every ratio this row is compared by is known to +-target."""
    ratios = [e for e in (rounds.vs_reference, rounds.vs_fastest) if e is not None]
    return bool(ratios) and all(e.rounds >= MIN_ROUNDS and e.halfwidth() <= target for e in ratios)

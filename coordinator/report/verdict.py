"""The decision a report opens with: which row to deploy, by how much it wins, and what this
hardware favours that no row tried. A pure function of the report."""
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from coordinator.machine.precisions import accelerated, why
from coordinator.report.document import Report, Row
from coordinator.run.round_stats import Estimate, estimate, paired
from shared.scenarios import declared



@dataclass
class Verdict:
    best: Optional[Row] = None
    runner_up: Optional[Row] = None
    # the runner-up's time over the best's, paired per round (interleaved), else from the two p50s
    margin: Optional[Estimate] = None
    paired: bool = False
    ranked: List[Row] = field(default_factory=list)  # passing rows, fastest first
    untried: List[str] = field(default_factory=list)  # what the hardware favours and no row ran
    # latency against fidelity: the ok rows no other row beats on both (any precision, parity or not)
    front: List[Row] = field(default_factory=list)
    costs: List[str] = field(default_factory=list)  # --price-per-hour: per 1,000 inferences, per throughput row
    arithmetic: str = ""  # the best row's GFLOP/s against this machine's measured peak at its precision

    def lines(self) -> List[str]:
        """The verdict in words, one sentence a line."""
        if self.best is None:
            out = ["No row ran and passed parity: nothing to deploy from this run."]
        else:
            out = [f"Deploy {self.best.label()}: p50 {self.best.latency_ms.p50:.2f} ms"  # type: ignore[union-attr]
                   + (f", {self.best.speedup_text()} PyTorch's speed" if self.best.speedup_text() else "")
                   + (", outputs passed parity." if not self.best.parity or self.best.parity.passed else
                      f", {self.best.accuracy.metric} within the accuracy budget (drop "  # type: ignore[union-attr]
                      f"{self.best.accuracy.drop:+.4f}; parity failed).")]
            if self.runner_up is None:
                out.append("No other row passed parity to compare it with.")
            elif self.margin is not None and self.margin.known() and self.margin.low <= 1.0:
                out.append(f"Indistinguishable here from {self.runner_up.label()}: its time is "
                           f"{self.margin.text()}x the best's (the interval crosses 1).")
            elif self.margin is not None:
                how = ("paired within rounds" if self.margin.known() else "one round: no interval") if self.paired \
                    else "from two separate time windows: no interval"
                interval = f"[{self.margin.low:.2f}–{self.margin.high:.2f}], " if self.margin.known() else ""
                out.append(f"{self.margin.value:.2f}x faster than the runner-up, {self.runner_up.label()} "
                           f"({interval}{how}).")
            else:
                out.append(f"The runner-up, {self.runner_up.label()}, shared no round with it: no paired margin.")
        if self.arithmetic:
            out.append(self.arithmetic)
        if len(self.front) > 1:
            out.append("Pareto front of latency against fidelity (no other row is both faster and closer to "
                       "PyTorch): " + "; ".join(f"{r.label()} {r.latency_ms.p50:.2f} ms, {fidelity(r)[1]}"  # type: ignore
                                              for r in self.front) + ".")
        out += self.costs
        out += [f"Not tried: {u}" for u in self.untried]
        return out


def fidelity(r: Row) -> Tuple[float, str]:
    """How far a row's outputs are from PyTorch's, as one number (lower is closer) and in words."""
    p = r.parity
    if p is None:
        return 0.0, "the reference"
    if p.detection is not None:
        d = p.detection
        if d.fidelity_map is not None:
            return 1 - d.fidelity_map, f"fidelity mAP {d.fidelity_map:.3f}"
        return 1 - d.matched_fraction, f"{d.matched_fraction:.0%} of boxes matched"
    if p.classification is not None:
        return 1 - p.classification.min_cosine, f"min cosine {p.classification.min_cosine:.5f}"
    worst = max((o.max_abs for o in p.outputs if o.max_abs is not None), default=None)
    if worst is None:
        return float("inf"), "not compared"
    return worst, f"max abs diff {worst:.1e}"


def pareto_front(rows: List[Row]) -> List[Row]:
    """The rows no other row beats on both latency and fidelity, fastest first."""
    scored = [(r.latency_ms.p50, fidelity(r)[0], r) for r in rows if r.latency_ms is not None]  # type: ignore
    front = [r for t, f, r in scored if not any((t2 <= t and f2 <= f) and (t2 < t or f2 < f) for t2, f2, _ in scored)]
    return sorted(front, key=lambda r: r.latency_ms.p50)  # type: ignore[union-attr]


def costs(report: Report, price_per_hour: Optional[float]) -> List[str]:
    """--price-per-hour: what 1,000 inferences cost at the samples/s of each row whose scenario is
    `priced` (the throughput scenario's)."""
    if not price_per_hour:
        return []
    rows = sorted((r for r in report.results if r.status == "ok" and declared(r.scenario).priced and r.throughput_per_s),
                  key=lambda r: -r.throughput_per_s)  # type: ignore[operator]
    return [f"At {price_per_hour:g} per hour, {r.label()} costs {price_per_hour / 3600 * 1000 / r.throughput_per_s:.4g} "
            f"per 1,000 inferences ({r.throughput_per_s:.1f}/s)." for r in rows]  # type: ignore[operator]


def passing(r: Row, accuracy_budget: Optional[float] = None) -> bool:
    """An ok row whose outputs match the reference (the reference itself included), or whose
    task metric drops by no more than `accuracy_budget` (--accuracy-budget, with --dataset)."""
    if r.status != "ok" or r.latency_ms is None:
        return False
    if r.parity is None:
        return r.is_reference()
    within = accuracy_budget is not None and r.accuracy is not None and r.accuracy.drop is not None \
        and r.accuracy.drop <= accuracy_budget
    return r.parity.passed or within


def at_verdict_point(r: Row) -> bool:
    """Whether a row is at the point the verdict decides on: batch 1 of a `ranked` scenario (the
    latency scenario: one request at a time), on this machine."""
    return r.batch_size == 1 and not r.machine and declared(r.scenario).ranked


def decide(report: Report) -> Verdict:
    """The fastest passing row at the verdict's point (`at_verdict_point`), against the next fastest."""
    budget = report.setup.setting("accuracy_budget")
    rows = [r for r in report.results if passing(r, budget) and at_verdict_point(r)]
    ranked = sorted(rows, key=lambda r: r.latency_ms.p50)  # type: ignore[union-attr]
    same_point = [r for r in report.results if r.status == "ok" and at_verdict_point(r)
                  and (r.parity is not None or r.is_reference())]
    v = Verdict(ranked=ranked, untried=untried(report), front=pareto_front(same_point),
                costs=costs(report, report.setup.setting("price_per_hour")))
    if not ranked:
        return v
    v.best = ranked[0]
    v.arithmetic = arithmetic(report, v.best)
    if len(ranked) > 1:
        v.runner_up = ranked[1]
        a, b = v.best.rounds, v.runner_up.rounds
        if a is not None and b is not None and a.group == b.group:
            v.margin, v.paired = estimate(paired(b.round_p50_ms, a.round_p50_ms)), True
        else:
            x = v.runner_up.latency_ms.p50 / v.best.latency_ms.p50  # type: ignore[union-attr]
            v.margin = Estimate(x, x, x, 1)
    return v


def arithmetic(report: Report, row: Row) -> str:
    """How much of the machine's measured peak a row's arithmetic reaches, and which precision's
    peak is far above it (the next factor, when a row at that precision would pass)."""
    gflop, peaks = report.model.gflop, report.device.peak_gflops or {}
    if not gflop or row.latency_ms is None or not row.latency_ms.p50:
        return ""
    rate = gflop / (row.latency_ms.p50 / 1e3)
    unit = "GOP/s" if row.precision == "int8" else "GFLOP/s"
    text = f"Its arithmetic: {rate:.0f} {unit} ({gflop:.3g} GFLOP a call)"
    mine = peaks.get(row.precision)
    if mine:
        text += (f", {rate / mine:.0%} of this machine's measured {row.precision} peak ({mine:.0f} {unit}, a matrix "
                 f"product on {report.setup.setting('threads')} threads)")
        if rate > mine:  # measured again when a row passes it: what is left is the engine's doing
            text += " (above it: the engine does fewer operations than PyTorch counts, or beats PyTorch's product)"

        above = [f"{p} {v:.0f}" for p, v in peaks.items() if v and p != row.precision and v > 1.5 * mine]
        if above:
            text += f"; peaks here above it: {', '.join(above)}"
    return text + "."


def untried(report: Report) -> List[str]:
    """Precisions the run's device accelerates that no ok row ran at."""
    flags, device = report.device.cpu_flags or [], report.setup.setting("device") or "cpu"
    ran = {r.precision for r in report.results if r.status == "ok"}
    out = []
    for precision in accelerated(device, flags, [g.to_dict() for g in report.device.gpus]):
        if precision not in ran:
            has = f"this CPU has {why(precision, flags)}" if device == "cpu" else f"this GPU runs {precision} natively"
            out.append(f"{has} and no {precision} row ran (try --precision auto).")
    return out

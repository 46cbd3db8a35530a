"""The decision a report opens with: which row to deploy, by how much it wins, and what this
hardware favours that no row tried. A pure function of the report."""
from dataclasses import dataclass, field
from typing import List, Optional

from .engines import REFERENCE
from .report import Report, Row
from .run.round_stats import Estimate, estimate, paired

# CPU flags (as /proc/cpuinfo spells them) -> the precision they accelerate
ACCELERATES = (("amx_bf16", "bf16"), ("avx512_bf16", "bf16"), ("amx_int8", "int8"), ("avx512_vnni", "int8"),
               ("avx_vnni", "int8"))


@dataclass
class Verdict:
    best: Optional[Row] = None
    runner_up: Optional[Row] = None
    # the runner-up's time over the best's, paired per round (interleaved), else from the two p50s
    margin: Optional[Estimate] = None
    paired: bool = False
    ranked: List[Row] = field(default_factory=list)  # passing rows, fastest first
    untried: List[str] = field(default_factory=list)  # what the hardware favours and no row ran

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
        out += [f"Not tried: {u}" for u in self.untried]
        return out


def passing(r: Row, accuracy_budget: Optional[float] = None) -> bool:
    """An ok row whose outputs match the reference (the reference itself included), or whose
    task metric drops by no more than `accuracy_budget` (--accuracy-budget, with --dataset)."""
    if r.status != "ok" or r.latency_ms is None:
        return False
    if r.parity is None:
        return r.engine == REFERENCE
    within = accuracy_budget is not None and r.accuracy is not None and r.accuracy.drop is not None \
        and r.accuracy.drop <= accuracy_budget
    return r.parity.passed or within


def decide(report: Report) -> Verdict:
    """The fastest passing row at one request at a time on this machine (the latency scenario,
    batch 1), against the next fastest."""
    budget = report.setup.setting("accuracy_budget")
    rows = [r for r in report.results if passing(r, budget) and r.scenario == "latency" and r.batch_size == 1
            and not r.machine]
    ranked = sorted(rows, key=lambda r: r.latency_ms.p50)  # type: ignore[union-attr]
    v = Verdict(ranked=ranked, untried=untried(report))
    if not ranked:
        return v
    v.best = ranked[0]
    if len(ranked) > 1:
        v.runner_up = ranked[1]
        a, b = v.best.rounds, v.runner_up.rounds
        if a is not None and b is not None and a.group == b.group:
            v.margin, v.paired = estimate(paired(b.round_p50_ms, a.round_p50_ms)), True
        else:
            x = v.runner_up.latency_ms.p50 / v.best.latency_ms.p50  # type: ignore[union-attr]
            v.margin = Estimate(x, x, x, 1)
    return v


def untried(report: Report) -> List[str]:
    """Precisions this CPU accelerates that no ok row ran at."""
    flags = set(report.device.cpu_flags or [])
    ran = {r.precision for r in report.results if r.status == "ok"}
    out = []
    for precision in dict.fromkeys(p for f, p in ACCELERATES if f in flags):
        if precision not in ran:
            named = ", ".join(f for f, p in ACCELERATES if p == precision and f in flags)
            out.append(f"this CPU has {named} and no {precision} row ran (try --precision fp32,{precision}).")
    return out

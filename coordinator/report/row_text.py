"""A row's figures in words, for the note column of every view and the timed-loop line."""
from typing import Any

from coordinator.report.parity import Parity
from coordinator.run.round_stats import AUDIT_FLAG

WAITING_CPU_NOTE = 5.0  # % of a core a waiting runner uses before its row says so


def stop_text(row: Any) -> str:
    """Why the timed loop stopped, in words."""
    m = row.measurement
    if m is None or row.latency_ms is None:
        return ""
    n, secs = row.latency_ms.count, m.timed_s
    if row.rounds is not None:
        r = row.rounds
        how = {"converged": f"every ratio known to ±{r.target:.0%}", "count": "the calls asked for",
               "budget": f"budget spent before every ratio was known to ±{r.target:.0%}"}.get(r.stop, r.stop)
        return f"{len(r.round_p50_ms)} rounds, {n} calls in {secs:.1f} s: {how}"
    if m.stop == "count":
        return f"{n} calls in {secs:.1f} s (fixed count)"
    if m.stop == "converged":
        return f"{n} calls in {secs:.1f} s: median known to ±{m.target_ci:.0%}"
    return f"{n} calls in {secs:.1f} s: budget spent before the median was known to ±{m.target_ci:.0%}"


def repeats_spread(row: Any) -> str:
    """With --repeats: the range of the repeats' medians, relative to their median."""
    if len(row.repeat_p50_ms) < 2:
        return ""
    xs = sorted(row.repeat_p50_ms)
    mid = xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
    return f"{len(xs)} repeats, p50 {xs[0]:.2f}–{xs[-1]:.2f} ms (spread {(xs[-1] - xs[0]) / mid:.1%})"


def figures_note(row: Any) -> str:
    """What to know about an ok row's figures (parity, noise, precision, audit, waiting CPU,
    repeats), or why the row is not ok."""
    if row.status != "ok" or row.latency_ms is None:
        return row.summary()
    parts = [f"parity: {parity_failure(row.parity)}" if row.parity and not row.parity.passed else "",
             f"noisy: spread {row.rounds.paired_spread if row.rounds else row.latency_ms.robust_cv:.1%}"
             if row.noisy else "",
             f"imprecise: {stop_text(row)}" if row.imprecise() else "",
             f"may reuse results: {row.rounds.repeated_over_rotated:.2f}x the time on a repeated input"
             if row.rounds and row.rounds.repeated_over_rotated and row.rounds.repeated_over_rotated < AUDIT_FLAG
             else "",
             f"used {row.rounds.waiting_cpu_percent:.0f}% of a core while others were timed"
             if row.rounds and row.rounds.waiting_cpu_percent > WAITING_CPU_NOTE else "",
             repeats_spread(row),
             row.schedule]  # timed alone in an interleaved run, and why
    return "; ".join(p for p in parts if p)


def parity_failure(p: Parity) -> str:
    """Why parity failed, in a few words."""
    if p.note:
        return p.note
    if p.summary:
        return p.summary
    if p.classification:
        c = p.classification
        return (f"{c.output}: top-1 agreement {c.top1_agreement:.0%}, min cosine {c.min_cosine:.4f} "
                f"(need 100% and {c.min_required_cosine})")
    if p.detection:
        d = p.detection
        return (f"{d.matched_fraction:.0%} of boxes matched, labels {d.label_agreement:.0%} equal, "
                f"mean IoU {d.mean_iou:.3f}")
    for o in p.outputs:
        if not o.passed:
            return f"{o.name}: {o.note}" if o.note else f"{o.name}: max abs diff {o.max_abs:.2e} > atol {p.atol:g} + rtol {p.rtol:g}"
    return "failed"

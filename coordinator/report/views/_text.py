"""Text that more than one view shows."""
from typing import List, Optional

from coordinator.divergence.search import Divergence, OpDrift, TensorError
from coordinator.report.parity import Parity
from coordinator.report.document import Row, verdict


def ms(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.2f}"


def phases_text(r: Row) -> str:
    return ", ".join(f"{k} {v:.2f} ms" for k, v in r.breakdown_ms.items())


def parity_text(p: Parity) -> str:
    if p.detection:
        d = p.detection
        return (f"{verdict(p)} — {d.matched}/{max(d.reference_boxes, d.engine_boxes)} boxes matched "
                f"({d.matched_fraction:.1%}, need {d.min_matched_fraction:.0%}), mean IoU {d.mean_iou:.4f}, "
                f"labels {d.label_agreement:.1%} equal, max score diff {d.max_score_diff:.2e}, "
                f"only in reference {d.only_reference}, only in engine {d.only_engine}, fidelity mAP "
                f"{'-' if d.fidelity_map is None else f'{d.fidelity_map:.4f}'}")
    if p.note:
        return f"{verdict(p)} — {p.note}"
    if p.summary:  # a family's own account (Parity.figures)
        return f"{verdict(p)} — {p.summary}"
    if p.classification:
        c = p.classification
        o = p.outputs[0]
        return (f"{verdict(p)} — {c.output}: top-1 agreement {c.top1_agreement:.0%} over {c.inputs} input(s), "
                f"min cosine {c.min_cosine:.5f} (need 100% and >= {c.min_required_cosine}); elementwise max abs "
                f"{o.max_abs:.2e}, beyond atol {p.atol:g} + rtol {p.rtol:g}: {'no' if o.passed else 'yes'}")
    worst = ", ".join(f"{o.name}: max abs {o.max_abs:.2e}, max rel {o.max_rel:.2e}" if o.max_abs is not None
                      else f"{o.name}: {o.note}" for o in p.outputs)
    return f"{verdict(p)} (atol {p.atol:g}, rtol {p.rtol:g}) — {worst}"


DRIFT_SHOWN = 8  # operator types in the drift table
CHAIN_NAMED = 8  # nodes of the chain named in one line


def divergence_lines(d: Optional[Divergence]) -> List[str]:
    """The localisation in a few lines: the first divergent node with its operator, attributes
    and figures, its inputs, the chain after it, how it was found and against what."""
    if d is None:
        return []
    lines = [f"divergence: {d.summary() if d.status == 'found' else d.status + ' — ' + d.note}"]
    if d.first is not None:
        f = d.first
        if d.attributes:
            lines.append("attributes: " + ", ".join(f"{k}={v}" for k, v in d.attributes.items()))
        lines.append(f"error: {_figures(f)}")
        if d.inputs:
            lines.append("inputs, within tolerance: " + "; ".join(f"{e.tensor} ({_figures(e)})" for e in d.inputs))
        if d.chain:
            more = f" ... (+{d.chain_length - CHAIN_NAMED})" if d.chain_length > CHAIN_NAMED else ""
            lines.append("then: " + " -> ".join(f"{e.node} ({e.op})" for e in d.chain[:CHAIN_NAMED]) + more)
        if d.note:
            lines.append(f"note: {d.note}")
    lines.append(f"found by: {d.method or '-'}, {d.compared} tensor(s) compared on test input {d.sample}, "
                 f"tolerance atol {d.atol:g} + rtol {d.rtol:g} ({d.precision})"
                 + (f", {len(d.missing)} not returned by the engine" if d.missing else ""))
    if d.reference:
        lines.append(f"reference: {d.reference}")
    return lines


def drift_rows(d: Optional[Divergence]) -> List[OpDrift]:
    """The operator types that add the most relative error, for the drift table."""
    return [] if d is None else [o for o in d.drift if o.added > 0 or o.beyond][:DRIFT_SHOWN]


def _figures(e: TensorError) -> str:
    if e.note:
        return e.note
    ratio = "" if e.ratio is None else f", {e.ratio:.3g}x the tolerance"
    rel = "" if e.rel_error is None else f", relative L2 error {e.rel_error:.2e}"
    return f"max abs {e.max_abs:.3g}, max rel {e.max_rel:.3g}{ratio}{rel}"

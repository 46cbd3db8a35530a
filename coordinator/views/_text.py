"""Text that more than one view shows."""
from typing import Optional

from ..parity import Parity
from ..report import Row, verdict


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

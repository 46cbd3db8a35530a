"""Parity with the PyTorch reference: the result records and the numeric library the model
families (coordinator/tasks/) judge with; pure functions over saved outputs.

Tensor outputs pass when every element satisfies |out - ref| <= atol + rtol * |ref| (numpy's
allclose rule), with tolerances that widen with the precision the engine actually ran at, so
an fp16 run is not failed by an fp32 tolerance by design. A family may judge its outputs by
what they mean instead (detections matched as boxes, classifier logits by top-1 and cosine):
see its module.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from shared.records import Record
from shared.result import NOT_READ_BACK
from shared.spec import PRECISIONS
from shared.tensors import Sample

# precision -> (atol, rtol) for tensor outputs
TOLERANCES: Dict[str, Tuple[float, float]] = {
    "fp32": (1e-3, 1e-3), "fp16": (1e-2, 1e-2), "bf16": (5e-2, 5e-2), "int8": (1e-1, 1e-1),
}


@dataclass
class TensorParity(Record):
    name: str
    passed: bool
    max_abs: Optional[float] = None
    max_rel: Optional[float] = None
    mean_abs: Optional[float] = None
    note: str = ""


@dataclass
class DetectionParity(Record):
    passed: bool
    reference_boxes: int
    engine_boxes: int
    matched: int
    matched_fraction: float
    mean_iou: float
    label_agreement: float  # share of matched pairs with the same label
    max_score_diff: float
    min_matched_fraction: float
    min_mean_iou: float
    only_reference: int = 0  # reference boxes no engine box matched
    only_engine: int = 0  # engine boxes that matched no reference box
    fidelity_map: Optional[float] = None  # COCO mAP@[.5:.95] with the reference as ground truth


@dataclass
class ClassificationParity(Record):
    passed: bool
    output: str  # the logits
    inputs: int  # rows compared (samples x batch)
    top1_agreement: float  # share of rows whose arg-max class is the reference's
    min_cosine: float  # the worst row's cosine similarity to the reference logits
    min_required_cosine: float


@dataclass
class Parity(Record):
    passed: bool
    method: str  # "tensor", "detection" or "classification"
    precision: str
    atol: float
    rtol: float
    outputs: List[TensorParity] = field(default_factory=list)  # worst sample per output
    detection: Optional[DetectionParity] = None
    classification: Optional[ClassificationParity] = None
    note: str = ""
    # A family's own figures (mask IoU, keypoint distance...) and its one-line account of them:
    # a new family reports its parity here, without a record of its own in this file.
    figures: Dict[str, float] = field(default_factory=dict)
    summary: str = ""


def tolerance_precision(ran: str, asked: str) -> str:
    """The looser of the two: an engine that runs an fp16-converted model at fp32 (ONNX Runtime
    on a CPU) still computes with weights rounded to fp16. Unknown values go through, and fail
    parity with a message. A precision the runner did not read back is judged at the one asked."""
    if ran == NOT_READ_BACK:
        return asked
    if ran in PRECISIONS and asked in PRECISIONS:
        return max(ran, asked, key=PRECISIONS.index)  # fp32, fp16, bf16, int8: ever looser
    return ran


def precheck(reference: List[Sample], outputs: List[Sample], precision: str, method: str) -> Optional[Parity]:
    """A failed parity when the outputs cannot be compared at all, else None."""
    if precision not in TOLERANCES:  # a runner's free-form precision is a failed parity, not a crash
        return Parity(False, method, precision, 0.0, 0.0,
                      note=f"the runner reported precision {precision!r}, not one of {', '.join(TOLERANCES)}: "
                           "no tolerance to compare with (a runner reports one of these and puts any detail "
                           "in its settings)")
    if len(outputs) != len(reference):
        atol, rtol = TOLERANCES[precision]
        return Parity(False, "tensor", precision, atol, rtol,
                      note=f"{len(outputs)} output samples for {len(reference)} inputs")
    return None


def compare_tensors(reference: List[Sample], outputs: List[Sample], precision: str) -> Parity:
    """Every reference output elementwise at the precision's tolerances; the worst sample per
    output is kept."""
    atol, rtol = TOLERANCES[precision]
    worst: Dict[str, TensorParity] = {}
    for ref, out in zip(reference, outputs):
        for name, r in ref.items():
            p = compare_tensor(name, r, out.get(name), atol, rtol)
            if name not in worst or _worse(p, worst[name]):
                worst[name] = p
    results = list(worst.values())
    return Parity(all(p.passed for p in results), "tensor", precision, atol, rtol, results)


def _worse(a: TensorParity, b: TensorParity) -> bool:
    return (not a.passed, a.max_abs or 0.0) > (not b.passed, b.max_abs or 0.0)


def compare_tensor(name: str, ref: np.ndarray, out: Optional[np.ndarray], atol: float, rtol: float) -> TensorParity:
    if out is None:
        return TensorParity(name, False, note="missing from the engine's outputs")
    if out.shape != ref.shape:
        return TensorParity(name, False, note=f"shape {list(out.shape)}, reference {list(ref.shape)}")
    if not np.all(np.isfinite(out)) and np.all(np.isfinite(ref)):
        return TensorParity(name, False, note=f"{int(np.size(out) - np.isfinite(out).sum())} non-finite values")
    if ref.size == 0:
        return TensorParity(name, True, 0.0, 0.0, 0.0)
    r, o = ref.astype(np.float64), out.astype(np.float64)
    diff = np.abs(o - r)
    rel = diff / np.maximum(np.abs(r), np.finfo(np.float32).tiny)
    passed = bool(np.all(diff <= atol + rtol * np.abs(r)))
    return TensorParity(name, passed, float(diff.max()), float(rel.max()), float(diff.mean()))

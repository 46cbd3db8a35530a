"""Parity with the PyTorch reference: pure functions over saved outputs.

Tensor outputs pass when every element satisfies |out - ref| <= atol + rtol * |ref| (numpy's
allclose rule), with tolerances that widen with the precision the engine actually ran at, so
an fp16 run is not failed by an fp32 tolerance by design.

Detection outputs (boxes / labels / scores) are compared as detections, because a tiny score
change reorders boxes and raw diffs then explode while the detections are the same: engine
boxes are matched to reference boxes greedily, highest reference score first, to the unmatched
engine box of highest IoU (>= 0.5). The matched fraction counts against the larger of the two
sets, so boxes missing on either side lower it. Fidelity mAP scores the engine's detections with
PyTorch's as ground truth (COCO mAP@[.5:.95]): a measure of deployment fidelity, not accuracy.

Classifier logits below fp32 are judged on what a classifier outputs: the same top-1 class for
every input and a cosine similarity to the reference logits above a precision-dependent floor.
The elementwise figures are still reported; at fp32 they decide, as for every tensor.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from shared.records import Record
from shared.tensors import Sample

from .accuracy import fidelity_map

# precision -> (atol, rtol) for tensor outputs
TOLERANCES: Dict[str, Tuple[float, float]] = {
    "fp32": (1e-3, 1e-3), "fp16": (1e-2, 1e-2), "bf16": (5e-2, 5e-2), "int8": (1e-1, 1e-1),
}
# precision -> (min matched fraction, min mean IoU of matches) for detections
DETECTION_THRESHOLDS: Dict[str, Tuple[float, float]] = {
    "fp32": (0.95, 0.95), "fp16": (0.90, 0.90), "bf16": (0.80, 0.85), "int8": (0.70, 0.80),
}
MATCH_IOU = 0.5
# precision -> least cosine similarity of each input's logits to the reference, for classifiers
MIN_COSINE: Dict[str, float] = {"fp16": 0.999, "bf16": 0.995, "int8": 0.98}


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


def compare(reference: List[Sample], outputs: List[Sample], precision: str, detection: bool,
            classification: bool = False) -> Parity:
    if precision not in TOLERANCES:  # a runner's free-form precision is a failed parity, not a crash
        return Parity(False, "detection" if detection else "tensor", precision, 0.0, 0.0,
                      note=f"the runner reported precision {precision!r}, not one of {', '.join(TOLERANCES)}: "
                           "no tolerance to compare with (a runner reports one of these and puts any detail "
                           "in its settings)")
    atol, rtol = TOLERANCES[precision]
    if len(outputs) != len(reference):
        return Parity(False, "tensor", precision, atol, rtol,
                      note=f"{len(outputs)} output samples for {len(reference)} inputs")
    if detection:
        return _compare_detections(reference, outputs, precision, atol, rtol)
    worst: Dict[str, TensorParity] = {}
    for ref, out in zip(reference, outputs):
        for name, r in ref.items():
            p = compare_tensor(name, r, out.get(name), atol, rtol)
            if name not in worst or _worse(p, worst[name]):
                worst[name] = p
    results = list(worst.values())
    tensors_ok = all(p.passed for p in results)
    if classification and precision in MIN_COSINE and all(p.note == "" for p in results):
        c = _compare_logits(reference, outputs, results[0].name, MIN_COSINE[precision])
        return Parity(c.passed, "classification", precision, atol, rtol, results, classification=c)
    return Parity(tensors_ok, "tensor", precision, atol, rtol, results)


def _compare_logits(reference: List[Sample], outputs: List[Sample], name: str, min_cosine: float) -> ClassificationParity:
    ref = np.concatenate([r[name].reshape(r[name].shape[0], -1) for r in reference]).astype(np.float64)
    out = np.concatenate([o[name].reshape(o[name].shape[0], -1) for o in outputs]).astype(np.float64)
    agree = float(np.mean(ref.argmax(axis=1) == out.argmax(axis=1)))
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cosine = float(np.min(np.sum(ref * out, axis=1) / np.maximum(norms, 1e-30)))
    return ClassificationParity(agree == 1.0 and cosine >= min_cosine, name, len(ref), agree, cosine, min_cosine)


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


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes in (x1, y1, x2, y2)."""
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clip(0).prod(axis=2)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match_detections(ref: Sample, out: Sample) -> List[Tuple[int, int, float]]:
    """Greedy matching: (reference index, engine index, IoU) for each matched pair."""
    order = np.argsort(-ref["scores"], kind="stable")
    ious = box_iou(ref["boxes"].astype(np.float64), out["boxes"].astype(np.float64))
    taken = np.zeros(len(out["boxes"]), dtype=bool)
    pairs = []
    for i in order:
        if ious.shape[1] == 0:
            break
        candidates = np.where(taken, -1.0, ious[i])
        j = int(np.argmax(candidates))
        if candidates[j] >= MATCH_IOU:
            taken[j] = True
            pairs.append((int(i), j, float(candidates[j])))
    return pairs


def _compare_detections(reference: List[Sample], outputs: List[Sample], precision: str,
                        atol: float, rtol: float) -> Parity:
    min_fraction, min_iou = DETECTION_THRESHOLDS[precision]
    n_ref = n_out = denominator = 0
    ious: List[float] = []
    same_label: List[bool] = []
    score_diffs: List[float] = [0.0]
    for ref, out in zip(reference, outputs):
        missing = [k for k in ("boxes", "labels", "scores") if k not in out]
        if missing:
            return Parity(False, "detection", precision, atol, rtol, note=f"missing outputs {missing}")
        if not np.all(np.isfinite(out["boxes"])) or not np.all(np.isfinite(out["scores"])):
            return Parity(False, "detection", precision, atol, rtol, note="non-finite boxes or scores")
        pairs = match_detections(ref, out)
        n_ref += len(ref["boxes"])
        n_out += len(out["boxes"])
        denominator += max(len(ref["boxes"]), len(out["boxes"]))
        for i, j, iou in pairs:
            ious.append(iou)
            same_label.append(bool(ref["labels"][i] == out["labels"][j]))
            score_diffs.append(abs(float(ref["scores"][i]) - float(out["scores"][j])))
    fraction = len(ious) / denominator if denominator else 1.0
    mean_iou = float(np.mean(ious)) if ious else (1.0 if denominator == 0 else 0.0)
    labels = float(np.mean(same_label)) if same_label else 1.0
    passed = fraction >= min_fraction and mean_iou >= min_iou and labels >= min_fraction
    det = DetectionParity(passed, n_ref, n_out, len(ious), fraction, mean_iou, labels, max(score_diffs),
                          min_fraction, min_iou, only_reference=n_ref - len(ious), only_engine=n_out - len(ious),
                          fidelity_map=fidelity_map(reference, outputs)["map"])
    return Parity(passed, "detection", precision, atol, rtol, detection=det)

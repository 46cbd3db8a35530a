"""Task accuracy with a well-kept evaluator: COCO mAP (pycocotools) for detectors, top-1/top-5
for classifiers; and fidelity mAP, which scores an engine's detections against PyTorch's own
detections taken as ground truth (deployment fidelity, not accuracy). Which metric a model gets
is its family's choice (coordinator/tasks/, `Task.metric`)."""
import contextlib
import io
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from shared.records import Record
from shared.tensors import Sample


@dataclass
class Accuracy(Record):
    """An engine's task metric on a labelled dataset, beside PyTorch's on the same images."""

    metric: str  # "COCO mAP@[.5:.95]" or "top-1"
    value: float
    reference: Optional[float] = None
    drop: Optional[float] = None  # reference - value
    details: Dict[str, float] = field(default_factory=dict)


def coco_map(ground_truth: Dict[str, Any], detections: List[Dict[str, Any]]) -> Dict[str, float]:
    """mAP@[.5:.95], mAP@.5 and mAP@.75 of `detections` (COCO results format) against a
    COCO-format `ground_truth` dict."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = ground_truth
        gt.createIndex()
        if not detections:
            return {"map": 0.0, "map50": 0.0, "map75": 0.0}
        evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluation.params.imgIds = [img["id"] for img in ground_truth["images"]]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [max(0.0, float(s)) for s in evaluation.stats[:3]]  # -1 means "no ground truth"
    return {"map": stats[0], "map50": stats[1], "map75": stats[2]}


def to_coco_detections(outputs: Sequence[Sample], image_ids: Sequence[int],
                       scales: Sequence[Tuple[float, float]]) -> List[Dict[str, Any]]:
    """Engine outputs (x1, y1, x2, y2 in input pixels) as COCO results in image pixels."""
    results = []
    for out, image_id, (sx, sy) in zip(outputs, image_ids, scales):
        boxes = out["boxes"].astype(np.float64) * [sx, sy, sx, sy]
        for (x1, y1, x2, y2), label, score in zip(boxes, out["labels"], out["scores"]):
            results.append({"image_id": int(image_id), "category_id": int(label), "score": float(score),
                            "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]})
    return results


def fidelity_map(reference: Sequence[Sample], outputs: Sequence[Sample]) -> Dict[str, float]:
    """COCO mAP of the engine's detections with the reference detections as ground truth."""
    ids = list(range(1, len(reference) + 1))
    ones = [(1.0, 1.0)] * len(reference)
    truth = to_coco_detections(reference, ids, ones)
    categories = sorted({d["category_id"] for d in truth} | {int(label) for o in outputs for label in o["labels"]})
    ground_truth = {
        "images": [{"id": i} for i in ids],
        "categories": [{"id": c} for c in categories],
        "annotations": [{"id": n, "image_id": d["image_id"], "category_id": d["category_id"], "bbox": d["bbox"],
                         "area": d["bbox"][2] * d["bbox"][3], "iscrowd": 0} for n, d in enumerate(truth, 1)],
    }
    return coco_map(ground_truth, to_coco_detections(outputs, ids, ones))


def topk_accuracy(outputs: Sequence[Sample], labels: Sequence[int], name: str) -> Dict[str, float]:
    """Top-1 and top-5 accuracy of classifier logits (one image per sample)."""
    top1 = top5 = 0
    for out, label in zip(outputs, labels):
        logits = out[name].reshape(-1)
        ranked = np.argsort(-logits, kind="stable")
        top1 += int(ranked[0] == label)
        top5 += int(label in ranked[:5])
    n = max(len(labels), 1)
    return {"top1": top1 / n, "top5": top5 / n}

"""Keypoint detectors in torchvision's form (Keypoint R-CNN): detections as `detection.py` has
them, plus `keypoints` (N, 17, 3: x, y, visibility in input pixels) and `keypoints_scores`.

Persons are matched by box as for a detector; each matched pair's keypoints are then compared
by COCO's object keypoint similarity (OKS): the distance of each keypoint normalised by the
reference box's area and COCO's per-keypoint sigma, 1.0 when every keypoint is where the
reference put it. Resizing, normalisation, box decoding, NMS and the keypoint heatmap decoding
are inside the graph, so an engine's time includes them.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from shared.tensors import Sample

from coordinator.report.parity import Parity
from coordinator.tasks import ExportSignature, _skeletons
from coordinator.tasks.detection import OUTPUTS as BOX_OUTPUTS
from coordinator.tasks.detection import Detection, match_detections

OUTPUTS = (*BOX_OUTPUTS, "keypoints", "keypoints_scores")
# COCO's per-keypoint sigmas (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles)
SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10
# precision -> least mean OKS of matched persons
MIN_OKS: Dict[str, float] = {"fp32": 0.95, "fp16": 0.90, "bf16": 0.85, "int8": 0.75}


class Keypoints(Detection):
    name = "keypoints"
    parity_method = "keypoints"

    def claims_torch_output(self, output: Any) -> bool:
        return isinstance(output, list) and bool(output) and isinstance(output[0], dict) and "keypoints" in output[0]

    def claims_onnx_outputs(self, names: Sequence[str]) -> bool:
        return set(OUTPUTS) <= set(names)

    def export_signature(self, height: int, width: int) -> ExportSignature:
        boxes = super().export_signature(height, width)
        return ExportSignature(boxes.args, boxes.input_names, list(OUTPUTS),
                               {**boxes.dynamic_axes, **{o: {0: "detections"} for o in OUTPUTS[3:]}})

    def preprocessing(self, size: Tuple[int, int]) -> str:
        return (super().preprocessing(size) + "; resizing, box decoding, NMS and keypoint decoding are inside the "
                "graph (timed with the engine)")

    def compare_outputs(self, reference: List[Sample], outputs: List[Sample], precision: str) -> Parity:
        boxes = super().compare_outputs(reference, outputs, precision)
        if boxes.note:
            return boxes
        if any("keypoints" not in o for o in outputs):
            return Parity(False, self.parity_method, precision, boxes.atol, boxes.rtol, note="missing output keypoints")
        similarities: List[float] = []
        distances: List[float] = [0.0]
        for ref, out in zip(reference, outputs):
            for i, j, _ in match_detections(ref, out):
                s, d = oks(ref["keypoints"][i], out["keypoints"][j], ref["boxes"][i])
                similarities.append(s)
                distances.append(d)
        d = boxes.detection
        need = MIN_OKS[precision]
        mean_oks = float(np.mean(similarities)) if similarities else None
        passed = boxes.passed and (mean_oks is None or mean_oks >= need)
        figures = {"matched_fraction": d.matched_fraction, "mean_box_iou": d.mean_iou,
                   "persons_compared": float(len(similarities)), "max_normalised_distance": max(distances)}
        if mean_oks is not None:
            figures.update(mean_oks=mean_oks, min_oks=min(similarities))
        if d.reference_boxes == 0 and d.engine_boxes == 0:
            summary = "no person on either side: nothing compared"
        else:
            points = (f"mean OKS {mean_oks:.4f} (need {need}), worst {min(similarities):.4f} over {len(similarities)} "
                      f"matched person(s), largest keypoint distance {max(distances):.3f} of the box size"
                      if similarities else "no keypoints compared")
            summary = (f"{d.matched}/{max(d.reference_boxes, d.engine_boxes)} persons matched ({d.matched_fraction:.1%}, "
                       f"need {d.min_matched_fraction:.0%}), mean box IoU {d.mean_iou:.4f}; {points}")
        return Parity(passed, self.parity_method, precision, boxes.atol, boxes.rtol, detection=d,
                      figures=figures, summary=summary)

    def picture(self, inputs: Sample, outputs: Sample, min_score: float = 0.5, most: int = 10) -> Optional[str]:
        """The skeletons of the most confident persons over the input."""
        chw = next(iter(inputs.values()), None)
        if chw is None or chw.ndim != 3 or any(k not in outputs for k in OUTPUTS):
            return None
        return _skeletons.draw(chw, outputs, min_score, most)


def oks(ref: np.ndarray, out: np.ndarray, box: np.ndarray) -> Tuple[float, float]:
    """(OKS, largest distance / sqrt(box area)) of one person's keypoints against the reference's,
    over all 17 keypoints (the reference's own visibility flags are the model's, not labels)."""
    area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-6)
    d2 = ((ref[:, :2].astype(np.float64) - out[:, :2]) ** 2).sum(axis=1)
    similarity = float(np.mean(np.exp(-d2 / (2 * area * (2 * SIGMAS) ** 2))))
    return similarity, float(np.sqrt(d2.max() / area))

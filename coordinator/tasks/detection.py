"""Object detectors in torchvision's form: a list of CHW images in, a list of dicts of
`boxes` (x1, y1, x2, y2 in input pixels), `labels` and `scores` out.

Outputs are compared as detections, because a tiny score change reorders boxes and raw diffs
then explode while the detections are the same: engine boxes are matched to reference boxes
greedily, highest reference score first, to the unmatched engine box of highest IoU (>= 0.5).
The matched fraction counts against the larger of the two sets, so boxes missing on either
side lower it. Fidelity mAP scores the engine's detections with PyTorch's as ground truth
(COCO mAP@[.5:.95]): a measure of deployment fidelity, not accuracy. The task metric is COCO
mAP on a COCO-format dataset.
"""
import base64
import io
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from shared.tensors import Sample

from coordinator.report.accuracy import coco_map, fidelity_map, to_coco_detections
from coordinator.report.parity import TOLERANCES, DetectionParity, Parity
from coordinator.tasks import ExportSignature, Task

OUTPUTS = ("boxes", "labels", "scores")
# precision -> (min matched fraction, min mean IoU of matches)
THRESHOLDS: Dict[str, Tuple[float, float]] = {
    "fp32": (0.95, 0.95), "fp16": (0.90, 0.90), "bf16": (0.80, 0.85), "int8": (0.70, 0.80),
}
MATCH_IOU = 0.5
# outputs that make a detector's output another family's (instance masks, keypoints)
RICHER = ("masks", "keypoints")


class Detection(Task):
    name = "detection"
    torch_call = "list_of_images"
    batch_axis = False  # a list of CHW images, one graph call per image
    torch_outputs = "first_dict"
    dataset_kinds = ("coco",)
    parity_method = "detection"
    draws = True

    def claims_torch_output(self, output: Any) -> bool:
        return (isinstance(output, list) and bool(output) and isinstance(output[0], dict) and "boxes" in output[0]
                and not set(RICHER) & set(output[0]))

    def claims_onnx_outputs(self, names: Sequence[str]) -> bool:
        return set(OUTPUTS) <= set(names) and not set(RICHER) & set(names)

    def export_signature(self, height: int, width: int) -> ExportSignature:
        import torch

        # A list of CHW images: the graph has no batch axis; image size and detection count vary.
        return ExportSignature(([torch.rand(3, height, width)],), ["images"], list(OUTPUTS),
                               {"images": {1: "height", 2: "width"}, **{o: {0: "detections"} for o in OUTPUTS}})

    def preprocess(self, image: Any, size: Tuple[int, int]) -> np.ndarray:
        from PIL import Image

        # The model normalises and resizes inside (GeneralizedRCNNTransform): give it [0, 1] RGB.
        h, w = size
        x = np.asarray(image.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def preprocessing(self, size: Tuple[int, int]) -> str:
        h, w = size
        return f"RGB, resized to {h}x{w} (bilinear), scaled to [0, 1], CHW; the model normalises inside"

    def compare_outputs(self, reference: List[Sample], outputs: List[Sample], precision: str) -> Parity:
        atol, rtol = TOLERANCES[precision]
        min_fraction, min_iou = THRESHOLDS[precision]
        n_ref = n_out = denominator = 0
        ious: List[float] = []
        same_label: List[bool] = []
        score_diffs: List[float] = [0.0]
        for ref, out in zip(reference, outputs):
            missing = [k for k in OUTPUTS if k not in out]
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

    def metric(self, outputs: Sequence[Sample], evaluation: Dict[str, Any], data_dir: Path,
               output_names: Sequence[str]) -> Tuple[str, float, Dict[str, float]]:
        truth = json.loads((data_dir / "ground_truth.json").read_text())
        d = coco_map(truth, to_coco_detections(outputs, evaluation["image_ids"], evaluation["scales"]))
        return "COCO mAP@[.5:.95]", d["map"], d

    def picture(self, inputs: Sample, outputs: Sample, min_score: float = 0.5, most: int = 25) -> Optional[str]:
        """The most confident boxes (at most `most`, score >= `min_score`) on the input image."""
        from PIL import Image, ImageDraw

        chw = next(iter(inputs.values()), None)
        if chw is None or chw.ndim != 3 or any(k not in outputs for k in OUTPUTS):
            return None
        picture = Image.fromarray((np.clip(chw.transpose(1, 2, 0), 0, 1) * 255).astype("uint8"))
        draw = ImageDraw.Draw(picture)
        for i in np.argsort(-outputs["scores"])[:most]:
            if outputs["scores"][i] < min_score:
                break
            x1, y1, x2, y2 = (float(v) for v in outputs["boxes"][i])
            draw.rectangle([x1, y1, x2, y2], outline=(255, 40, 40), width=2)
            draw.text((x1 + 2, y1 + 1), f"{int(outputs['labels'][i])} {outputs['scores'][i]:.2f}", fill=(255, 255, 0))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG", optimize=True)
        return base64.b64encode(buffer.getvalue()).decode()


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

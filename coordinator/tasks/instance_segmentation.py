"""Instance segmenters in torchvision's form (Mask R-CNN): detections as `detection.py` has
them, plus `masks` (N, 1, H, W), each instance's mask probabilities already pasted into the
input image by the graph.

Boxes are matched as for a detector; each matched pair's masks are then thresholded at 0.5 (the
same rule for every engine and the reference) and compared by IoU. A pair whose two masks are
both empty after the threshold (random weights do that) has no IoU: it is counted and said, not
called a match. Resizing, normalisation, box decoding, NMS and mask pasting are all inside the
graph (GeneralizedRCNNTransform and its postprocess), so an engine's time includes them.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from shared.tensors import Sample

from coordinator.report.parity import Parity
from coordinator.tasks import ExportSignature, _drawing
from coordinator.tasks.detection import OUTPUTS as BOX_OUTPUTS
from coordinator.tasks.detection import Detection, match_detections

OUTPUTS = (*BOX_OUTPUTS, "masks")
MASK_THRESHOLD = 0.5
# precision -> least mean mask IoU of matched instances
MIN_MASK_IOU: Dict[str, float] = {"fp32": 0.95, "fp16": 0.90, "bf16": 0.85, "int8": 0.75}


class InstanceSegmentation(Detection):
    name = "instance_segmentation"
    parity_method = "instance_segmentation"

    def claims_torch_output(self, output: Any) -> bool:
        return isinstance(output, list) and bool(output) and isinstance(output[0], dict) and set(OUTPUTS) <= set(output[0])

    def claims_onnx_outputs(self, names: Sequence[str]) -> bool:
        return set(OUTPUTS) <= set(names)

    def export_signature(self, height: int, width: int) -> ExportSignature:
        boxes = super().export_signature(height, width)
        return ExportSignature(boxes.args, boxes.input_names, list(OUTPUTS),
                               {**boxes.dynamic_axes, "masks": {0: "detections"}})

    def preprocessing(self, size: Tuple[int, int]) -> str:
        return (super().preprocessing(size) + "; resizing, box decoding, NMS and mask pasting are inside the graph "
                "(timed with the engine); masks thresholded at 0.5 on the host for parity")

    def compare_outputs(self, reference: List[Sample], outputs: List[Sample], precision: str) -> Parity:
        boxes = super().compare_outputs(reference, outputs, precision)
        if boxes.note:
            return boxes
        if any("masks" not in o for o in outputs):
            return Parity(False, self.parity_method, precision, boxes.atol, boxes.rtol, note="missing output masks")
        ious: List[float] = []
        both_empty = 0
        for ref, out in zip(reference, outputs):
            for i, j, _ in match_detections(ref, out):
                r, o = ref["masks"][i] > MASK_THRESHOLD, out["masks"][j] > MASK_THRESHOLD
                union = np.logical_or(r, o).sum()
                if union == 0:
                    both_empty += 1
                else:
                    ious.append(float(np.logical_and(r, o).sum() / union))
        d = boxes.detection
        need = MIN_MASK_IOU[precision]
        mask_iou = float(np.mean(ious)) if ious else None
        passed = boxes.passed and (mask_iou is None or mask_iou >= need)
        figures = {"matched_fraction": d.matched_fraction, "mean_box_iou": d.mean_iou, "masks_compared": float(len(ious)),
                   "masks_empty_both": float(both_empty)}
        if mask_iou is not None:
            figures.update(mean_mask_iou=mask_iou, min_mask_iou=min(ious))
        masks = (f"mean mask IoU {mask_iou:.4f} (need {need}), worst {min(ious):.4f} over {len(ious)} matched instance(s)"
                 if ious else "no mask compared")
        empty = f"; {both_empty} matched pair(s) with both masks empty after the 0.5 threshold (not counted)" if both_empty else ""
        summary = (f"{d.matched}/{max(d.reference_boxes, d.engine_boxes)} boxes matched ({d.matched_fraction:.1%}, need "
                   f"{d.min_matched_fraction:.0%}), mean box IoU {d.mean_iou:.4f}; {masks}{empty}")
        if d.reference_boxes == 0 and d.engine_boxes == 0:
            summary = "no detection on either side: nothing compared"
        return Parity(passed, self.parity_method, precision, boxes.atol, boxes.rtol, detection=d,
                      figures=figures, summary=summary)

    def picture(self, inputs: Sample, outputs: Sample, min_score: float = 0.5, most: int = 25) -> Optional[str]:
        """The masks of the most confident instances over the input, boxes drawn on top."""
        from PIL import Image, ImageDraw

        chw = next(iter(inputs.values()), None)
        if chw is None or chw.ndim != 3 or any(k not in outputs for k in OUTPUTS):
            return None
        image = _drawing.rgb(chw, normalised=False).astype(np.float32)
        colours = _drawing.palette(most + 1)[1:]
        shown = [i for i in np.argsort(-outputs["scores"])[:most] if outputs["scores"][i] >= min_score]
        for colour, i in zip(colours, shown):
            mask = outputs["masks"][i, 0] > MASK_THRESHOLD
            image[mask] = 0.5 * image[mask] + 0.5 * colour
        picture = Image.fromarray(image.astype("uint8"))
        draw = ImageDraw.Draw(picture)
        for colour, i in zip(colours, shown):
            draw.rectangle([float(v) for v in outputs["boxes"][i]], outline=tuple(int(c) for c in colour), width=2)
        return _drawing.png(picture)

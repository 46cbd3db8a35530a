"""Semantic segmenters in torchvision's form: an NCHW batch in, a dict whose `out` holds the
per-pixel class logits (N, classes, H, W) at the input's size.

The logits are judged by what a segmenter outputs, the arg-max class map: the share of pixels
whose class equals the reference's, and the mean IoU of the engine's map against the
reference's over the classes either map uses. With random weights the map can collapse to one
class; the parity then says so instead of calling one uniform map matching another a result.
Resizing to the input size (bilinear) is inside the graph; normalisation is on the host.
"""
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from shared.tensors import Sample

from coordinator.report.parity import TOLERANCES, Parity, compare_tensors
from coordinator.tasks import IMAGENET_MEAN, IMAGENET_STD, ExportSignature, Task, _drawing

OUTPUT = "out"
# precision -> (least pixel agreement, least mean IoU against the reference map)
THRESHOLDS: Dict[str, Tuple[float, float]] = {
    "fp32": (0.995, 0.98), "fp16": (0.98, 0.95), "bf16": (0.95, 0.90), "int8": (0.90, 0.80),
}


class SemanticSegmentation(Task):
    name = "semantic_segmentation"
    torch_outputs = "dict"
    parity_method = "segmentation"
    draws = True

    def claims_torch_output(self, output: Any) -> bool:
        # torchvision's segmenters' structure only: `out` (and `aux`), class maps of the image's
        # size; any other dict of tensors is a user's, flattened and compared elementwise
        return (isinstance(output, dict) and OUTPUT in output and set(output) <= {OUTPUT, "aux"}
                and getattr(output[OUTPUT], "ndim", 0) == 4)

    def export_signature(self, height: int, width: int) -> ExportSignature:
        import torch

        # A pretrained FCN/DeepLabV3 keeps its auxiliary head (its weights have one); that output
        # is in the graph unnamed and is not compared: only `out` is what the model answers.
        return ExportSignature((torch.rand(1, 3, height, width),), ["input"], [OUTPUT],
                               {"input": {0: "batch"}, OUTPUT: {0: "batch"}})

    def preprocess(self, image: Any, size: Tuple[int, int]) -> np.ndarray:
        from PIL import Image

        # The whole image, not a centre crop: the map is drawn over it.
        h, w = size
        x = np.asarray(image.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
        return np.ascontiguousarray(((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)[None])

    def preprocessing(self, size: Tuple[int, int]) -> str:
        h, w = size
        return (f"RGB, resized to {h}x{w} (bilinear), scaled to [0, 1], ImageNet mean/std normalised, NCHW with "
                "batch 1, on the host and not timed; the graph ends with the logits upsampled to the input size; "
                "the arg-max class map is taken on the host, not timed")

    def compare_outputs(self, reference: List[Sample], outputs: List[Sample], precision: str) -> Parity:
        tensors = compare_tensors([{OUTPUT: r[OUTPUT]} for r in reference], outputs, precision)
        atol, rtol = TOLERANCES[precision]
        if tensors.outputs[0].note:  # missing, misshapen or non-finite: no map to compare
            return Parity(False, self.parity_method, precision, atol, rtol, tensors.outputs, note=tensors.outputs[0].note)
        min_agree, min_miou = THRESHOLDS[precision]
        agree, mious, classes = [], [], set()
        for ref, out in zip(reference, outputs):
            r, o = ref[OUTPUT].argmax(axis=1), out[OUTPUT].argmax(axis=1)
            agree.append(float(np.mean(r == o)))
            mious.append(map_miou(r, o))
            classes |= set(np.unique(r).tolist())
        figures = {"pixel_agreement": min(agree), "mean_iou": min(mious), "reference_classes": float(len(classes)),
                   "max_abs_logit_diff": float(tensors.outputs[0].max_abs or 0.0)}
        passed = figures["pixel_agreement"] >= min_agree and figures["mean_iou"] >= min_miou
        summary = (f"arg-max pixel agreement {figures['pixel_agreement']:.2%} (need {min_agree:.1%}), mean IoU vs "
                   f"reference {figures['mean_iou']:.4f} (need {min_miou}), worst input; logits max abs diff "
                   f"{figures['max_abs_logit_diff']:.2e}; {len(classes)} class(es) in the reference map")
        if len(classes) == 1:
            summary += " — degenerate: the reference map is one class everywhere, so agreement says little"
        return Parity(passed, self.parity_method, precision, atol, rtol, tensors.outputs,
                      figures=figures, summary=summary)

    def picture(self, inputs: Sample, outputs: Sample) -> Optional[str]:
        """The class map over the input, half transparent, one colour per class."""
        from PIL import Image

        x = next(iter(inputs.values()), None)
        if x is None or x.ndim != 4 or OUTPUT not in outputs or outputs[OUTPUT].ndim != 4:
            return None
        logits = outputs[OUTPUT][0]
        colours = _drawing.palette(logits.shape[0])[logits.argmax(axis=0)]
        blend = (0.5 * _drawing.rgb(x, normalised=True) + 0.5 * colours).astype("uint8")
        return _drawing.png(Image.fromarray(blend))


def map_miou(ref: np.ndarray, out: np.ndarray) -> float:
    """Mean IoU of two class maps over the classes either uses."""
    ious = []
    for c in np.union1d(np.unique(ref), np.unique(out)):
        r, o = ref == c, out == c
        ious.append(np.logical_and(r, o).sum() / np.logical_or(r, o).sum())
    return float(np.mean(ious)) if ious else 1.0

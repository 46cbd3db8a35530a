"""Ultralytics YOLO detectors (YOLOv8, YOLO11) as a pipeline that e2e owns: letterbox
pre-processing on the host, the engine call on the raw head, then decoding and NMS on the host,
one implementation (this module) for every engine.

The graph is exported without Ultralytics' NMS: its first output `predictions` is
(1, 4 + classes, anchors): box centre, size (input pixels) and per-class probabilities. Parity
is on the final detections, matched as `detection.py` matches boxes. Ultralytics initialises the
class biases to a prior of about 1e-4 (`Detect.bias_init`), so a randomly initialised head
scores every anchor near 1e-4: parity keeps detections from PARITY_SCORE, far below the
picture's 0.25, and says so when nothing is left on either side. Each row reports the host's
pre- and post-processing medians beside the engine's, and their sum (`host_phases`). The host's
steps themselves are `_yolo_host.py`'s.
"""
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from shared.tensors import Sample

from coordinator.report.parity import Parity, compare_tensors
from coordinator.tasks import ExportSignature, Task
from coordinator.tasks._yolo_host import NMS_IOU, decode, letterbox
from coordinator.tasks.detection import Detection

OUTPUT = "predictions"
PARITY_SCORE = 5e-5  # detections parity compares (random heads score ~1e-4)
PICTURE_SCORE = 0.25  # Ultralytics' own default confidence
HOST_REPEATS = 20  # host pre/post calls timed per row


class Yolo(Task):
    name = "yolo"
    parity_method = "detection"
    draws = True

    def export_signature(self, height: int, width: int) -> ExportSignature:
        import torch

        # The model also returns its raw feature maps: they are exported unnamed and not compared.
        return ExportSignature((torch.rand(1, 3, height, width),), ["images"], [OUTPUT],
                               {"images": {0: "batch"}, OUTPUT: {0: "batch"}})

    def preprocess(self, image: Any, size: Tuple[int, int]) -> np.ndarray:
        return letterbox(image, size)

    def preprocessing(self, size: Tuple[int, int]) -> str:
        h, w = size
        return (f"letterbox on the host (timed per row): RGB, resized to fit {h}x{w} keeping the aspect ratio, padded "
                "with grey 114, scaled to [0, 1], NCHW with batch 1; the graph is the network without NMS; box "
                f"decoding and class-aware NMS (IoU {NMS_IOU}) on the host (timed per row)")

    def compare_outputs(self, reference: List[Sample], outputs: List[Sample], precision: str) -> Parity:
        raw = compare_tensors([{OUTPUT: r[OUTPUT]} for r in reference], outputs, precision)
        if raw.outputs[0].note:
            return Parity(False, "detection", precision, raw.atol, raw.rtol, raw.outputs, note=raw.outputs[0].note)
        boxes = Detection().compare_outputs([decode(r[OUTPUT], PARITY_SCORE) for r in reference],
                                            [decode(o[OUTPUT], PARITY_SCORE) for o in outputs], precision)
        d = boxes.detection
        figures = {"matched_fraction": d.matched_fraction, "mean_box_iou": d.mean_iou,
                   "reference_boxes": float(d.reference_boxes), "engine_boxes": float(d.engine_boxes),
                   "max_abs_raw_diff": float(raw.outputs[0].max_abs or 0.0)}
        if d.reference_boxes == 0 and d.engine_boxes == 0:
            summary = (f"no detection at score >= {PARITY_SCORE:g} on either side: nothing compared but the raw "
                       f"head (max abs diff {figures['max_abs_raw_diff']:.2e})")
            return Parity(raw.passed, "detection", precision, raw.atol, raw.rtol, raw.outputs,
                          figures=figures, summary=summary)
        summary = (f"{d.matched}/{max(d.reference_boxes, d.engine_boxes)} detections matched ({d.matched_fraction:.1%}, "
                   f"need {d.min_matched_fraction:.0%}) after e2e's decode+NMS at score >= {PARITY_SCORE:g}, mean IoU "
                   f"{d.mean_iou:.4f}, labels {d.label_agreement:.1%} equal; raw head max abs diff "
                   f"{figures['max_abs_raw_diff']:.2e}")
        return Parity(boxes.passed, "detection", precision, boxes.atol, boxes.rtol, raw.outputs, detection=d,
                      figures=figures, summary=summary)

    def host_phases(self, image: Any, size: Tuple[int, int], outputs: Sample) -> Dict[str, float]:
        return {"preprocess (host)": median_ms(lambda: letterbox(image, size)),
                "postprocess (host)": median_ms(lambda: decode(outputs[OUTPUT], PICTURE_SCORE))}

    def picture(self, inputs: Sample, outputs: Sample) -> Optional[str]:
        x = next(iter(inputs.values()), None)
        if x is None or x.ndim != 4 or OUTPUT not in outputs:
            return None
        return Detection().picture({"images": x[0]}, decode(outputs[OUTPUT], PICTURE_SCORE), min_score=PICTURE_SCORE)


def median_ms(call: Any) -> float:
    times = []
    for _ in range(HOST_REPEATS):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))

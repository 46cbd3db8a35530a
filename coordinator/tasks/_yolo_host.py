"""What the host does around an Ultralytics YOLO head (yolo.py's family): letterbox an image into
the model's input, and decode the raw head into detections with Ultralytics' class-aware NMS.
Pure numpy (and PIL for the image), the same for every engine; a helper, not a family (the `_`
keeps tasks/__init__.py's scan off it).
"""
from typing import Any, List, Tuple

import numpy as np

from shared.tensors import Sample

from coordinator.tasks.detection import box_iou

NMS_IOU = 0.7  # Ultralytics' default
MAX_DETECTIONS = 300
PAD = 114 / 255  # Ultralytics' letterbox grey


def letterbox(image: Any, size: Tuple[int, int]) -> np.ndarray:
    """An RGB PIL image fitted into (h, w) at its own aspect ratio, centred on grey, NCHW [0, 1]."""
    from PIL import Image

    h, w = size
    r = min(h / image.size[1], w / image.size[0])
    nw, nh = round(image.size[0] * r), round(image.size[1] * r)
    canvas = np.full((h, w, 3), PAD, np.float32)
    top, left = (h - nh) // 2, (w - nw) // 2
    canvas[top:top + nh, left:left + nw] = np.asarray(image.resize((nw, nh), Image.BILINEAR), np.float32) / 255.0
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None])


def decode(predictions: np.ndarray, min_score: float) -> Sample:
    """The head's (1, 4 + classes, anchors) as detections: best class per anchor, score filter,
    centre/size to corners, class-aware greedy NMS, at most MAX_DETECTIONS."""
    p = predictions[0].T.astype(np.float32)
    scores, labels = p[:, 4:].max(axis=1), p[:, 4:].argmax(axis=1)
    keep = scores >= min_score
    p, scores, labels = p[keep], scores[keep], labels[keep]
    boxes = np.concatenate([p[:, :2] - p[:, 2:4] / 2, p[:, :2] + p[:, 2:4] / 2], axis=1)
    kept = nms(boxes + labels[:, None] * 4096.0, scores)[:MAX_DETECTIONS]  # offset per class: class-aware
    return {"boxes": boxes[kept], "labels": labels[kept].astype(np.int64), "scores": scores[kept]}


def nms(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Indices kept by greedy NMS at NMS_IOU, highest score first."""
    order = np.argsort(-scores, kind="stable")
    kept: List[int] = []
    while order.size:
        i = order[0]
        kept.append(int(i))
        order = order[1:][box_iou(boxes[i:i + 1], boxes[order[1:]])[0] <= NMS_IOU]
    return np.array(kept, dtype=np.int64)

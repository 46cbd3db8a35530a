"""The YOLO family's host pipeline: letterbox, decode + NMS, parity on final detections."""
import numpy as np
from PIL import Image

from coordinator import tasks
from coordinator.tasks._yolo_host import PAD, decode, letterbox

YOLO = tasks.get("yolo")


def head(*anchors) -> np.ndarray:
    """(1, 4 + 3 classes, anchors) from (cx, cy, w, h, class, score) rows."""
    p = np.zeros((1, 7, len(anchors)), np.float32)
    for k, (cx, cy, w, h, c, s) in enumerate(anchors):
        p[0, :4, k] = cx, cy, w, h
        p[0, 4 + c, k] = s
    return p


def test_letterbox_keeps_the_aspect_ratio_on_grey():
    x = letterbox(Image.new("RGB", (200, 100), (255, 255, 255)), (100, 100))
    assert x.shape == (1, 3, 100, 100)
    assert np.allclose(x[0, :, 0, 50], PAD) and np.allclose(x[0, :, 50, 50], 1.0)  # bands above, image in the middle


def test_decode_filters_scores_and_suppresses_overlaps_per_class():
    p = head((50, 50, 20, 20, 0, 0.9), (51, 50, 20, 20, 0, 0.8), (51, 50, 20, 20, 1, 0.7), (10, 10, 4, 4, 2, 1e-6))
    d = decode(p, 0.5)
    assert d["labels"].tolist() == [0, 1]  # the 0.8 box overlaps the 0.9 one of its class; class 1 stays
    assert np.allclose(d["boxes"][0], [40, 40, 60, 60])
    assert len(decode(p, 1e-7)["scores"]) == 3


def test_parity_is_on_the_final_detections_and_says_when_none_are_left():
    p = head((50, 50, 20, 20, 0, 0.9), (20, 20, 10, 10, 1, 0.6))
    assert YOLO.compare([{"predictions": p}], [{"predictions": p}], "fp32").detection.matched == 2
    moved = p.copy()
    moved[0, 0, 0] += 15  # the first box moves most of its width
    assert not YOLO.compare([{"predictions": p}], [{"predictions": moved}], "fp32").passed
    empty = head((50, 50, 20, 20, 0, 0.0))
    nothing = YOLO.compare([{"predictions": empty}], [{"predictions": empty}], "fp32")
    assert nothing.passed and "no detection" in nothing.summary


def test_host_phases_time_pre_and_post_processing():
    phases = YOLO.host_phases(Image.new("RGB", (64, 48)), (32, 32), {"predictions": head((5, 5, 2, 2, 0, 0.9))})
    assert set(phases) == {"preprocess (host)", "postprocess (host)"} and all(v > 0 for v in phases.values())
    assert tasks.get("detection").host_phases(Image.new("RGB", (8, 8)), (8, 8), {}) == {}  # all in its graph

import numpy as np
import pytest

from coordinator import tasks
from coordinator.tasks.detection import box_iou, match_detections

GENERIC, DETECTION, CLASSIFICATION = (tasks.get(name) for name in ("generic", "detection", "classification"))

BOXES = np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 70]], dtype=np.float32)


def det(boxes, labels=(1, 2, 3), scores=(0.9, 0.8, 0.7)):
    return {"boxes": np.asarray(boxes, np.float32), "labels": np.asarray(labels, np.int64),
            "scores": np.asarray(scores, np.float32)}


def test_tensor_parity_uses_precision_tolerances():
    ref = [{"y": np.array([1.0, 2.0, 3.0], np.float32)}]
    near = [{"y": np.array([1.0, 2.0, 3.0 + 5e-3], np.float32)}]
    assert not GENERIC.compare(ref, near, "fp32").passed
    assert GENERIC.compare(ref, near, "fp16").passed
    worst = GENERIC.compare(ref, near, "fp32").outputs[0]
    assert worst.max_abs == pytest.approx(5e-3, rel=1e-3)


@pytest.mark.parametrize("out, note", [
    ({"y": np.ones(4, np.float32)}, "shape [4]"),
    ({"y": np.array([1.0, np.nan, 3.0], np.float32)}, "non-finite"),
    ({"z": np.ones(3, np.float32)}, "missing"),
])
def test_tensor_parity_failures_say_why(out, note):
    p = GENERIC.compare([{"y": np.array([1.0, 2.0, 3.0], np.float32)}], [out], "fp32")
    assert not p.passed and note in p.outputs[0].note


def test_iou():
    iou = box_iou(BOXES[:1], np.array([[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 110]], np.float32))
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])


def test_reordered_detections_match_fully():
    ref = det(BOXES)
    out = det(BOXES[::-1] + 0.1, labels=(3, 2, 1), scores=(0.7, 0.8, 0.9))
    p = DETECTION.compare([ref], [out], "fp32")
    assert p.passed and p.detection.matched == 3 and p.detection.label_agreement == 1.0
    assert p.detection.mean_iou > 0.97


def test_a_missing_box_lowers_the_matched_fraction():
    p = DETECTION.compare([det(BOXES)], [det(BOXES[:2], (1, 2), (0.9, 0.8))], "fp32")
    assert p.detection.matched_fraction == pytest.approx(2 / 3) and not p.passed


def test_label_swap_is_caught():
    p = DETECTION.compare([det(BOXES)], [det(BOXES, labels=(2, 1, 3))], "fp32")
    assert p.detection.matched == 3 and p.detection.label_agreement == pytest.approx(1 / 3)
    assert not p.passed


def test_matching_is_one_to_one():
    ref = det(BOXES[:1].repeat(2, axis=0), (1, 1), (0.9, 0.8))
    pairs = match_detections(ref, det(BOXES[:1], (1,), (0.9,)))
    assert pairs == [(0, 0, 1.0)]


def test_empty_detections_on_both_sides_pass():
    empty = det(np.zeros((0, 4)), (), ())
    assert DETECTION.compare([empty], [empty], "fp32").passed


def test_classifier_logits_below_fp32_are_judged_on_top1_and_cosine():
    ref = [{"logits": np.array([[2.0, 0.5, -1.0, 0.1]], np.float32)}]
    close = [{"logits": ref[0]["logits"] + np.array([[0.03, -0.03, 0.02, 0.0]], np.float32)}]  # fails 1e-2 elementwise
    flipped = [{"logits": np.array([[0.4, 0.5, -1.0, 0.1]], np.float32)}]
    assert not GENERIC.compare(ref, close, "fp16").passed  # as plain tensors, elementwise decides
    p = CLASSIFICATION.compare(ref, close, "fp16")
    assert p.passed and p.method == "classification" and not p.outputs[0].passed
    assert p.classification.top1_agreement == 1.0 and p.classification.min_cosine > 0.999
    assert not CLASSIFICATION.compare(ref, close, "fp32").passed  # fp32 stays strict
    bad = CLASSIFICATION.compare(ref, flipped, "int8")
    assert not bad.passed and bad.classification.top1_agreement == 0.0


def test_the_tolerance_is_the_looser_of_ran_and_asked_and_the_asked_when_not_read_back():
    from shared.result import NOT_READ_BACK

    from coordinator.report.parity import tolerance_precision

    assert tolerance_precision("fp32", "fp16") == "fp16"  # an fp16-converted model run at fp32
    assert tolerance_precision("int8", "fp32") == "int8"
    assert tolerance_precision(NOT_READ_BACK, "bf16") == "bf16"
    assert tolerance_precision("mixed", "fp32") == "mixed"  # goes through, and fails parity with a message

"""Evaluation with known answers, on COCO-format fixtures made here."""
import numpy as np
import pytest

from coordinator.report.accuracy import coco_map, fidelity_map, to_coco_detections, topk_accuracy

GT = {
    "images": [{"id": 1, "width": 200, "height": 200}, {"id": 2, "width": 200, "height": 200}],
    "categories": [{"id": 1}, {"id": 3}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "area": 10000, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 3, "bbox": [50, 50, 100, 50], "area": 5000, "iscrowd": 0},
    ],
}


def det(image_id, category, bbox, score=0.9):
    return {"image_id": image_id, "category_id": category, "bbox": bbox, "score": score}


def test_perfect_predictions_score_one():
    result = coco_map(GT, [det(1, 1, [0, 0, 100, 100]), det(2, 3, [50, 50, 100, 50])])
    assert result == pytest.approx({"map": 1.0, "map50": 1.0, "map75": 1.0})


def test_shifted_boxes_score_what_their_iou_allows():
    # IoU of a 100x100 box shifted 20 px is 80/120 = 0.667: a hit at thresholds 0.50..0.65 (4 of 10)
    result = coco_map(GT, [det(1, 1, [20, 0, 100, 100]), det(2, 3, [70, 50, 100, 50])])
    assert result == pytest.approx({"map": 0.4, "map50": 1.0, "map75": 0.0})


def test_wrong_labels_and_no_detections_score_zero():
    assert coco_map(GT, [det(1, 3, [0, 0, 100, 100])])["map"] == 0.0
    assert coco_map(GT, [])["map"] == 0.0


def test_boxes_are_scaled_back_to_image_pixels():
    out = {"boxes": np.array([[10, 20, 30, 60]], np.float32), "labels": np.array([1]), "scores": np.array([0.5])}
    [d] = to_coco_detections([out], [7], [(2.0, 0.5)])
    assert d == {"image_id": 7, "category_id": 1, "score": 0.5, "bbox": [20.0, 10.0, 40.0, 20.0]}


def sample(boxes, labels, scores):
    return {"boxes": np.array(boxes, np.float32).reshape(-1, 4), "labels": np.array(labels, np.int64),
            "scores": np.array(scores, np.float32)}


def test_fidelity_map_is_one_against_itself_and_drops_when_boxes_move():
    ref = [sample([[0, 0, 100, 100], [120, 120, 180, 190]], [1, 2], [0.9, 0.8])]
    assert fidelity_map(ref, ref)["map"] == pytest.approx(1.0)
    moved = [sample([[20, 0, 120, 100], [120, 120, 180, 190]], [1, 2], [0.9, 0.8])]
    assert fidelity_map(ref, moved)["map"] == pytest.approx((0.4 + 1.0) / 2)  # mean over the two categories


def test_topk():
    logits = [{"y": np.array([[0.1, 0.9, 0.0, 0.2, 0.3, 0.4, 0.5]])}, {"y": np.array([[5, 4, 3, 2, 1, 0, -1.0]])}]
    assert topk_accuracy(logits, [1, 4], "y") == {"top1": 0.5, "top5": 1.0}
    assert topk_accuracy(logits, [2, 6], "y") == {"top1": 0.0, "top5": 0.0}

"""The instance segmentation family: boxes matched, then mask IoU of the matched pairs."""
import numpy as np

from coordinator import tasks

MASKS = tasks.get("instance_segmentation")


def instances(masks: np.ndarray) -> dict:
    n = len(masks)
    boxes = np.tile(np.array([[0, 0, 8, 8]], np.float32), (n, 1)) + np.arange(n, dtype=np.float32)[:, None] * 20
    return {"boxes": boxes, "labels": np.ones(n, np.int64), "scores": np.linspace(0.9, 0.5, n).astype(np.float32),
            "masks": masks.astype(np.float32)}


def test_mask_rcnn_outputs_are_not_claimed_by_the_detector_family():
    out = [{"boxes": 0, "labels": 0, "scores": 0, "masks": 0}]
    assert tasks.for_torch_output(out).name == "instance_segmentation"
    assert tasks.for_onnx_outputs(["boxes", "labels", "scores", "masks"]).name == "instance_segmentation"


def test_mask_iou_of_matched_instances_and_both_empty_pairs_are_counted_apart():
    ref = np.zeros((2, 1, 10, 10))
    ref[0, 0, :, :5] = 0.9  # one mask of 50 pixels, one empty
    shifted = np.zeros_like(ref)
    shifted[0, 0, :, 1:6] = 0.9  # 40 of 60 pixels shared
    same = MASKS.compare([instances(ref)], [instances(ref)], "fp32")
    assert same.passed and same.figures["mean_mask_iou"] == 1.0 and same.figures["masks_empty_both"] == 1
    assert "both masks empty" in same.summary
    moved = MASKS.compare([instances(ref)], [instances(shifted)], "fp32")
    assert not moved.passed and np.isclose(moved.figures["mean_mask_iou"], 40 / 60)
    missing = MASKS.compare([instances(ref)], [{k: v for k, v in instances(ref).items() if k != "masks"}], "fp32")
    assert not missing.passed and "masks" in missing.note

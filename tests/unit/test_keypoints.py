"""The keypoints family: persons matched by box, then OKS of their keypoints."""
import base64
import io

import numpy as np

from coordinator import tasks

KP = tasks.get("keypoints")


def persons(shift: float = 0.0) -> dict:
    keypoints = np.zeros((1, 17, 3), np.float32)
    keypoints[0, :, 0] = np.linspace(10, 90, 17) + shift
    keypoints[0, :, 1] = np.linspace(10, 90, 17)
    keypoints[0, :, 2] = 1
    return {"boxes": np.array([[0, 0, 100, 100]], np.float32), "labels": np.ones(1, np.int64),
            "scores": np.array([0.9], np.float32), "keypoints": keypoints, "keypoints_scores": np.ones((1, 17), np.float32)}


def test_keypoint_rcnn_outputs_are_claimed_by_the_keypoints_family():
    assert tasks.for_torch_output([persons()]).name == "keypoints"
    assert tasks.for_onnx_outputs(list(persons())).name == "keypoints"


def test_oks_falls_as_keypoints_move_by_a_share_of_the_box():
    same = KP.compare([persons()], [persons()], "fp32")
    assert same.passed and same.figures["mean_oks"] == 1.0 and same.figures["persons_compared"] == 1
    moved = KP.compare([persons()], [persons(shift=5.0)], "fp32")  # 5 px in a 100 px box
    assert not moved.passed and moved.figures["mean_oks"] < 0.95
    assert np.isclose(moved.figures["max_normalised_distance"], 0.05)
    empty = {k: v[:0] for k, v in persons().items()}
    nothing = KP.compare([empty], [empty], "fp32")
    assert "no person on either side" in nothing.summary


def test_the_picture_draws_skeletons():
    from PIL import Image

    png = KP.picture({"images": np.zeros((3, 100, 120), np.float32)}, persons())
    with Image.open(io.BytesIO(base64.b64decode(png))) as picture:
        assert picture.size == (120, 100) and np.asarray(picture).any()

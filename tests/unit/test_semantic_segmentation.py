"""The semantic segmentation family: parity on the arg-max map, the degenerate case, the picture."""
import base64
import io

import numpy as np

from coordinator import tasks
from shared.torch_model import output_tensors

SEG = tasks.get("semantic_segmentation")


def logits(classes_map: np.ndarray, n: int = 4) -> np.ndarray:
    """(1, n, H, W) logits whose arg-max is `classes_map`."""
    out = np.zeros((1, n, *classes_map.shape), np.float32)
    np.put_along_axis(out[0], classes_map[None], 1.0, axis=0)
    return out


def test_a_segmenter_is_recognised_by_its_out_dict():
    assert tasks.for_torch_output({"out": np.zeros((1, 21, 8, 8))}).name == "semantic_segmentation"
    assert output_tensors({"out": 1, "aux": 2}, SEG.torch_outputs, ["out"]) == [1]


def test_parity_counts_flipped_pixels_and_mean_iou():
    ref = np.zeros((10, 10), int)
    ref[:, 5:] = 1
    same = SEG.compare([{"out": logits(ref)}], [{"out": logits(ref)}], "fp32")
    assert same.passed and same.figures["pixel_agreement"] == 1.0 and same.figures["reference_classes"] == 2
    moved = ref.copy()
    moved[:, 4] = 1  # a column of 10 pixels changes class
    p = SEG.compare([{"out": logits(ref)}], [{"out": logits(moved)}], "fp32")
    assert not p.passed and p.method == "segmentation"
    assert p.figures["pixel_agreement"] == 0.9
    assert np.isclose(p.figures["mean_iou"], (40 / 50 + 50 / 60) / 2)
    assert "90.00%" in p.summary


def test_a_one_class_map_is_called_degenerate_and_missing_output_fails():
    ref = np.zeros((6, 6), int)
    p = SEG.compare([{"out": logits(ref)}], [{"out": logits(ref)}], "fp32")
    assert p.passed and "degenerate" in p.summary
    missing = SEG.compare([{"out": logits(ref)}], [{"other": logits(ref)}], "fp32")
    assert not missing.passed and "missing" in missing.note


def test_the_picture_is_the_map_over_the_input():
    from PIL import Image

    x = np.zeros((1, 3, 12, 16), np.float32)
    png = SEG.picture({"input": x}, {"out": logits(np.zeros((12, 16), int))})
    with Image.open(io.BytesIO(base64.b64decode(png))) as picture:
        assert picture.size == (16, 12)
    assert SEG.picture({"input": x}, {"logits": np.zeros((1, 3))}) is None

"""--dataset end to end: every engine scored on labelled images beside PyTorch."""
import json
import shutil

import pytest

from coordinator.model.testdata import DEFAULT_IMAGES
from tests.integration.test_bench import bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def coco_fixture(folder):
    """The shipped photos with one made-up box each: a COCO-format dataset of 3 images."""
    (folder / "images").mkdir(parents=True)
    images, annotations = [], []
    for i, photo in enumerate(sorted(DEFAULT_IMAGES.iterdir()), 1):
        shutil.copy(photo, folder / "images" / photo.name)
        images.append({"id": i, "file_name": photo.name, "width": 300, "height": 300})
        annotations.append({"id": i, "image_id": i, "category_id": 1, "bbox": [10, 10, 100, 100],
                            "area": 10000, "iscrowd": 0})
    (folder / "annotations.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}))
    return folder / "annotations.json"


def test_coco_dataset_scores_every_detector_row(tmp_path, cache):
    result, out, rows, report = bench(tmp_path, cache, "--model", "tests.fixtures.tiny:small_faster_rcnn",
                                      "--engines", "torch,ort", "--dataset", str(coco_fixture(tmp_path / "coco")),
                                      "--limit", "2", "--iterations", "1", "--warmup", "0")
    assert report["data"]["count"] == 2 and report["data"]["evaluation"]["kind"] == "coco"
    torch_row, ort_row = rows[("torch", "fp32")], rows[("ort", "fp32")]
    for row in (torch_row, ort_row):
        acc = row["accuracy"]
        assert acc["metric"] == "COCO mAP@[.5:.95]" and 0.0 <= acc["value"] <= 1.0
    assert ort_row["accuracy"]["reference"] == pytest.approx(torch_row["accuracy"]["value"])
    # PyTorch's own detections as ground truth: ORT reproduces them
    assert ort_row["parity"]["detection"]["fidelity_map"] > 0.9
    assert "Task accuracy" in (out / "report.md").read_text()


def test_image_folder_scores_top1(tmp_path, cache):
    folder = tmp_path / "classes"
    for index, photo in enumerate(sorted(DEFAULT_IMAGES.iterdir())):
        (folder / f"class{index}").mkdir(parents=True)
        shutil.copy(photo, folder / f"class{index}" / photo.name)
    _, _, rows, _ = bench(tmp_path, cache, "--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "torch,ort",
                          "--dataset", str(folder))
    acc = rows[("ort", "fp32")]["accuracy"]
    assert acc["metric"] == "top-1" and set(acc["details"]) == {"top1", "top5"}
    assert acc["drop"] == pytest.approx(0.0)  # same logits, same ranking

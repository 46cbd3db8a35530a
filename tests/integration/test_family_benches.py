"""The families beyond boxes (masks, keypoints, class maps) end to end through the CLI on small
variants, with ort and openvino."""
import pytest

from tests.integration.test_bench import bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_semantic_segmentation_parity_on_a_small_segmenter(tmp_path, cache):
    _, out, rows, report = bench(tmp_path, cache, "--model", "tests.fixtures.tiny:small_lraspp", "--input-size", "128x160",
                                 "--engines", "torch,ort,openvino", "--iterations", "2", "--warmup", "0")
    assert report["model"]["task"] == "semantic_segmentation"
    for engine in ("ort", "openvino"):
        row = rows[(engine, "fp32")]
        assert row["status"] == "ok", row["reason"]
        parity = row["parity"]
        assert parity["method"] == "segmentation" and parity["passed"], parity
        assert parity["figures"]["reference_classes"] > 1  # not a uniform map: the test can fail
        assert parity["figures"]["pixel_agreement"] >= 0.995
    html = (out / "report.html").read_text()
    assert html.count("data:image/png") == 3  # the map per engine, PyTorch's first


def test_instance_segmentation_parity_on_a_small_mask_rcnn(tmp_path, cache):
    _, out, rows, report = bench(tmp_path, cache, "--model", "tests.fixtures.tiny:small_mask_rcnn", "--input-size", "128x160",
                                 "--engines", "torch,ort,openvino", "--iterations", "1", "--warmup", "0")
    assert report["model"]["task"] == "instance_segmentation"
    for engine in ("ort", "openvino"):
        row = rows[(engine, "fp32")]
        assert row["status"] == "ok", row["reason"]
        parity = row["parity"]
        assert parity["method"] == "instance_segmentation" and parity["passed"], parity
        assert parity["figures"]["masks_compared"] > 0  # masks not empty on both sides: the test can fail
        assert parity["figures"]["mean_mask_iou"] >= 0.95
    assert (out / "report.html").read_text().count("data:image/png") == 3


def test_keypoint_parity_on_a_small_keypoint_rcnn(tmp_path, cache):
    _, out, rows, report = bench(tmp_path, cache, "--model", "tests.fixtures.tiny:small_keypoint_rcnn", "--input-size",
                                 "128x160", "--engines", "torch,ort,openvino", "--iterations", "1", "--warmup", "0")
    assert report["model"]["task"] == "keypoints"
    for engine in ("ort", "openvino"):
        row = rows[(engine, "fp32")]
        assert row["status"] == "ok", row["reason"]
        parity = row["parity"]
        assert parity["method"] == "keypoints" and parity["passed"], parity
        assert parity["figures"]["persons_compared"] > 0  # random weights still find persons: the test can fail
        assert parity["figures"]["mean_oks"] >= 0.95
    assert (out / "report.html").read_text().count("data:image/png") == 3

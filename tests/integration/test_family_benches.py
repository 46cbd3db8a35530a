"""The families beyond boxes (masks, keypoints, class maps, the YOLO pipeline) end to end through the
CLI on small variants, with ort and openvino."""
import importlib.util

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


def test_yolo_pipeline_rows_have_host_phases_and_detection_parity(tmp_path, cache):
    if importlib.util.find_spec("ultralytics") is None:  # not imported here: it patches PIL.Image.open on import
        pytest.skip("the yolo zoo models need Ultralytics: pip install 'e2e[yolo]'")
    _, out, rows, report = bench(tmp_path, cache, "--model", "yolov8n", "--input-size", "160x160",
                                 "--engines", "torch,ort,openvino", "--iterations", "3", "--warmup", "1")
    assert report["model"]["task"] == "yolo"
    for engine in ("torch", "ort", "openvino"):
        row = rows[(engine, "fp32")]
        assert row["status"] == "ok", row["reason"]
        phases = row["breakdown_ms"]
        assert phases["inference (engine p50)"] == row["latency_ms"]["p50"]
        assert phases["preprocess (host)"] > 0 and phases["postprocess (host)"] > 0
        if engine != "torch":
            parity = row["parity"]
            assert parity["passed"] and parity["detection"]["reference_boxes"] > 0, parity  # not empty: can fail
    assert "preprocess (host)" in (out / "report.md").read_text()

"""ExecuTorch for real, in its own virtualenv, through `e2e bench`: a classifier exported, lowered to
XNNPACK and run (then the .pte from the cache), and the small detector, which torch.export stops at
torchvision's batched_nms, as it stops Faster R-CNN."""
import pytest

from tests.integration.test_bench import bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_executorch_lowers_a_classifier_to_xnnpack_once(tmp_path, cache):
    one = ("--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "executorch")
    _, _, rows, report = bench(tmp_path / "first", cache, *one)
    row = rows[("executorch", "fp32")]
    assert row["status"] == "ok", row["reason"]
    assert row["precision"] == "fp32" and row["parity"]["passed"], row["parity"]
    assert row["model_input"] == "the PyTorch model"
    settings = row["settings"]
    assert settings["threads"] == report["setup"]["config"]["execution"]["threads"] and settings["xnnpack_registered"]
    assert settings["delegation"]["subgraphs"] >= 1 and settings["delegation"]["delegated_nodes"] > 0
    with open(settings["converter_log"]) as f:
        assert "Number of delegated nodes" in f.read()

    _, _, again, _ = bench(tmp_path / "second", cache, *one)
    assert again[("executorch", "fp32")]["settings"]["conversion"] == "cached"
    assert again[("executorch", "fp32")]["settings"]["program"] == settings["program"]


def test_torch_export_stops_a_detector_at_batched_nms(tmp_path, cache):
    # with the torch row, which is measured: a bench with no measured row exits non-zero
    _, _, rows, _ = bench(tmp_path, cache, "--model", "tests.fixtures.tiny:small_faster_rcnn", "--engines", "torch,executorch",
                          "--iterations", "1", "--warmup", "0")
    row = rows[("executorch", "fp32")]
    assert row["status"] == "unsupported" and row["stage"] == "convert", row["reason"]
    assert row["error"]["operator"] == "batched_nms", row["error"]
    assert "torchvision/ops/boxes.py" in row["error"]["node"]

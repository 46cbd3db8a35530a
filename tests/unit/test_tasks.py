"""Model families (coordinator/tasks/): discovery, what each owns, and the PyTorch runner's card."""
import base64
import importlib.util
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from coordinator.model import zoo as models
from coordinator import tasks
from coordinator.model.dataset import Dataset
from coordinator.errors import UsageError
from coordinator.model.export import Artifact
from shared import RunSpec

ROOT = Path(__file__).parents[2]


def torch_runner_module():
    spec = importlib.util.spec_from_file_location("e2e_runner_torch_test", ROOT / "runners" / "torch" / "runner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_families_are_discovered():
    assert {"detection", "classification", "generic"} <= set(tasks.names())
    assert all(tasks.get(name).name == name for name in tasks.names())


def test_an_unknown_family_names_the_known_ones():
    with pytest.raises(UsageError, match="unknown model family .*'segmentation'.*detection"):
        tasks.get("segmentation")


def test_a_family_is_one_file(tmp_path, monkeypatch):
    """A family with its own parity rule and figures, in its one file; the report shows them."""
    (tmp_path / "depth.py").write_text(
        "from coordinator.report.parity import Parity\nfrom coordinator.tasks import Task\n\n\n"
        "class Depth(Task):\n    name = 'depth'\n\n"
        "    def compare_outputs(self, reference, outputs, precision):\n"
        "        return Parity(True, 'depth', precision, 0.0, 0.0, figures={'abs_rel': 0.01},\n"
        "                      summary='depth abs rel 0.010 (need <= 0.05)')\n")
    monkeypatch.setattr(tasks, "__path__", [*tasks.__path__, str(tmp_path)])
    tasks._registry.cache_clear()
    try:
        assert tasks.get("depth").name == "depth" and "detection" in tasks.names()
        from coordinator.report.views._text import parity_text

        sample = [{"depth": np.ones((1, 4), np.float32)}]
        parity = tasks.get("depth").compare(sample, sample, "fp32")
        assert parity_text(parity) == "passed — depth abs rel 0.010 (need <= 0.05)"
    finally:
        tasks._registry.cache_clear()
        sys.modules.pop("coordinator.tasks.depth", None)


def test_every_zoo_model_names_a_family():
    for model in models.REGISTRY.values():
        assert tasks.get(model.task).name == model.task


def test_families_are_recognised_from_outputs():
    det = [{"boxes": np.zeros((0, 4)), "labels": np.zeros(0), "scores": np.zeros(0)}]
    assert tasks.for_torch_output(det).name == "detection"
    assert tasks.for_torch_output(np.zeros((1, 10))).name == "generic"
    assert tasks.for_onnx_outputs(["scores", "boxes", "labels", "extra"]).name == "detection"
    assert tasks.for_onnx_outputs(["y"]).name == "generic"


def test_export_signatures():
    pytest.importorskip("torch")
    d = tasks.get("detection").export_signature(48, 64)
    assert d.input_names == ["images"] and d.output_names == ["boxes", "labels", "scores"]
    assert isinstance(d.args[0], list) and tuple(d.args[0][0].shape) == (3, 48, 64)
    assert d.dynamic_axes["images"] == {1: "height", 2: "width"} and d.dynamic_axes["scores"] == {0: "detections"}
    c = tasks.get("classification").export_signature(32, 32)
    assert (c.input_names, c.output_names, tuple(c.args[0].shape)) == (["input"], ["logits"], (1, 3, 32, 32))
    assert c.dynamic_axes == {"input": {0: "batch"}, "logits": {0: "batch"}}
    assert tasks.get("generic").export_signature(8, 8).output_names == ["output"]


def test_preprocessing_per_family():
    from PIL import Image

    image = Image.fromarray(np.full((60, 80, 3), 255, np.uint8))
    x = tasks.get("detection").preprocess(image, (30, 40))
    assert x.shape == (3, 30, 40) and x.dtype == np.float32 and x.max() == pytest.approx(1.0)
    y = tasks.get("classification").preprocess(image, (32, 32))
    assert y.shape == (1, 3, 32, 32) and y.dtype == np.float32 and y.flags.c_contiguous
    np.testing.assert_array_equal(y, tasks.get("generic").preprocess(image, (32, 32)))
    assert "CHW" in tasks.get("detection").preprocessing((30, 40))
    assert "ImageNet" in tasks.get("classification").preprocessing((32, 32))


def test_the_metric_is_the_familys(tmp_path):
    logits = [{"output": np.array([[0.1, 0.9, 0.0]])}, {"output": np.array([[0.8, 0.1, 0.0]])}]
    acc = tasks.get("generic").score({"kind": "imagefolder", "labels": [1, 1]}, tmp_path, logits, ["output"],
                                     reference=[logits[0], logits[0]])
    assert (acc.metric, acc.value, acc.reference, acc.drop) == ("top-1", 0.5, 1.0, 0.5)
    truth = {"images": [{"id": 5}], "categories": [{"id": 1}], "annotations": [
        {"id": 1, "image_id": 5, "category_id": 1, "bbox": [0, 0, 20, 20], "area": 400, "iscrowd": 0}]}
    (tmp_path / "ground_truth.json").write_text(json.dumps(truth))
    found = [{"boxes": np.array([[0, 0, 10, 10]], np.float32), "labels": np.array([1]), "scores": np.array([0.9])}]
    acc = tasks.get("detection").score({"kind": "coco", "image_ids": [5], "scales": [[2.0, 2.0]]}, tmp_path,
                                       found, ["boxes", "labels", "scores"])
    assert acc.metric == "COCO mAP@[.5:.95]" and acc.value == pytest.approx(1.0) and acc.reference is None


def test_a_dataset_the_family_does_not_score_is_refused():
    from coordinator.model.testdata import _check_scored

    artifact = Artifact(Path("."), Path("m.onnx"), None, "detection", {})
    with pytest.raises(UsageError, match="a folder of class folders, which a detection model is not scored on; "
                                         "give a COCO-format annotation file"):
        _check_scored(artifact, Dataset("imagefolder", "/data/classes", []))
    _check_scored(artifact, Dataset("coco", "/data/annotations.json", []))


def test_the_detection_picture_is_a_png_of_the_input():
    from PIL import Image

    inputs = {"images": np.random.default_rng(0).random((3, 40, 50), dtype=np.float32)}
    found = {"boxes": np.array([[2, 2, 20, 20], [5, 5, 9, 9]], np.float32), "labels": np.array([1, 2]),
             "scores": np.array([0.9, 0.1], np.float32)}
    png = tasks.get("detection").picture(inputs, found)
    with Image.open(io.BytesIO(base64.b64decode(png))) as picture:
        assert picture.format == "PNG" and picture.size == (50, 40)
    assert tasks.get("detection").picture(inputs, {"output": np.zeros(3)}) is None  # not detections: no picture
    assert tasks.get("classification").picture(inputs, {"logits": np.zeros((1, 3))}) is None
    assert [name for name in tasks.names() if tasks.get(name).draws] == ["detection", "instance_segmentation", "keypoints", "semantic_segmentation", "yolo"]
    assert tasks.find("segmentation") is None and tasks.find("") is None


def test_the_torch_card_says_how_to_call_and_an_old_card_falls_back_on_its_task():
    from shared.torch_model import calling_convention as convention
    for name in tasks.names():
        card = tasks.get(name).torch_card()
        assert convention(card) == (card["call"], card["outputs"])
    assert tasks.get("detection").torch_card() == {"call": "list_of_images", "outputs": "first_dict"}
    assert convention({"task": "detection"}) == ("list_of_images", "first_dict")
    assert convention({"task": "classification"}) == ("tensors", "tensors")
    with pytest.raises(Exception, match="call 'batch'"):
        convention({"call": "batch"})


def test_the_torch_runner_calls_as_the_card_says_and_times_a_models_phases():
    torch = pytest.importorskip("torch")
    from torch import nn

    class Transform(nn.Module):
        def forward(self, images):
            return torch.stack(images)

        def postprocess(self, x):
            return x * 2

    class Detector(nn.Module):  # torchvision's shape: a list of images in, a list of dicts out
        def __init__(self):
            super().__init__()
            self.transform = Transform()

        def forward(self, images):
            x = self.transform.postprocess(self.transform(images))
            return [{"boxes": x[0].reshape(-1, 4), "scores": x[0].flatten()[:2]}]

    module = torch_runner_module()
    runner = object.__new__(module.TorchRunner)
    runner.model, runner.device, runner.phase_ms, runner._hooks = Detector(), torch.device("cpu"), {}, []
    runner.call, runner.returns = "list_of_images", "first_dict"
    runner.output_names = ["scores", "boxes"]
    runner.spec = RunSpec(engine="torch", model_path="torch_model.json", inputs_path="inputs.npz")
    runner.instrument_impl(True)
    out = runner.infer_impl({"images": np.ones((1, 2, 4), np.float32)})
    runner.instrument_impl(False)
    assert list(out) == ["scores", "boxes"] and out["boxes"].shape == (2, 4) and float(out["scores"][0]) == 2.0
    assert set(runner.phase_ms) == {"preprocess", "inference", "postprocess"} and runner._hooks == []

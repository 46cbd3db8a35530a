"""A model a user brings: whatever their code raises ends in one line (what failed, their
exception, the last frame in their file) and exit 1, never a traceback; inputs and outputs of
any structure are named and flattened in a stable order."""
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from coordinator.model import example_inputs, exporters, input_binding
from coordinator.cli.app import app
from shared import torch_model

FIXTURES = "tests.fixtures.user_models"
runner = CliRunner()


def bench(tmp_path, model, *args):
    return runner.invoke(app, ["bench", "--model", f"{FIXTURES}:{model}", *args, "--engines", "torch",
                               "--weights", "random", "--cache-dir", str(tmp_path / "cache"),
                               "--out", str(tmp_path / "run")])


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert result.output.rstrip().endswith(errors[0]), result.output  # and nothing after it
    return errors[0]


@pytest.mark.parametrize("model, args, expected", [
    ("factory_raises", [], ["the model factory tests.fixtures.user_models:factory_raises failed: ValueError: "
                            "no checkpoint configured (at ", "user_models.py:", "in factory_raises)"]),
    ("not_a_module", [], ["the model factory tests.fixtures.user_models:not_a_module returned a dict, "
                          "not a torch.nn.Module"]),
    ("small_video", ["--inputs", f"{FIXTURES}:inputs_raise"],
     ["the inputs function tests.fixtures.user_models:inputs_raise failed: RuntimeError: dataset not mounted (at ",
      "in inputs_raise)"]),
    ("small_video", ["--input-size", "32x32"],
     ["the model's forward on one RGB image of 32x32 (assumed) failed: RuntimeError: ", "resnet.py:",
      "give the model's example inputs with --inputs package.module:make_inputs"]),
    ("unexportable", ["--inputs", f"{FIXTURES}:square_matrices"],
     ["failed with every exporter: torch.onnx.export(dynamo=False): UnsupportedOperatorError: ",
      "aten::linalg_eigvals", "torch.onnx.export(dynamo=True): "]),
])
def test_a_user_error_is_one_line_and_exit_1(tmp_path, model, args, expected):
    line = one_error_line(bench(tmp_path, model, *args))
    for part in expected:
        assert part in line, line
    assert not list((tmp_path / "cache").glob("models/*/model.onnx"))  # nothing half-made is published


def test_debug_shows_the_users_traceback(tmp_path):
    result = runner.invoke(app, ["--debug", "bench", "--model", f"{FIXTURES}:factory_raises", "--engines", "torch",
                                 "--weights", "random", "--cache-dir", str(tmp_path / "cache"),
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code != 0
    assert isinstance(result.exception.__cause__, ValueError)  # the user's own exception, chained


def _not_installed(monkeypatch, package):
    """As if `package` were not installed: its submodules too, which an earlier test may have imported
    (a submodule already in sys.modules imports without its parent being looked up)."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)


def test_a_missing_optional_package_names_the_extra(tmp_path, monkeypatch):
    _not_installed(monkeypatch, "ultralytics")
    result = runner.invoke(app, ["bench", "--model", "yolov8n", "--engines", "torch", "--weights", "random",
                                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run")])
    assert "pip install 'e2e[yolo]'" in one_error_line(result)
    _not_installed(monkeypatch, "transformers")
    result = runner.invoke(app, ["bench", "--model", "coordinator.model.hf_models:bert_encoder", "--inputs",
                                 "coordinator.model.hf_models:token_ids", "--engines", "torch", "--weights", "random",
                                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run")])
    line = one_error_line(result)
    assert "the model factory coordinator.model.hf_models:bert_encoder failed: ModuleNotFoundError" in line
    assert line.endswith("pip install 'e2e[transformers]'") and "hf_models.py:" in line


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet18", "--inputs", "x.npz"], "--inputs gives the example inputs of a model factory"),
    (["--model", f"{FIXTURES}:dict_head", "--inputs", "nowhere.npz"], "--inputs: no such file: /"),
    (["--model", f"{FIXTURES}:dict_head", "--inputs", "no_colon"], "expected package.module:function or a .npz"),
])
def test_bad_inputs_option(tmp_path, args, message):
    result = runner.invoke(app, ["bench", *args, "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "r")])
    assert message in one_error_line(result)


class TwoIn(torch.nn.Module):
    def forward(self, image1, image2, scale=1.0):
        return image1 - image2


def test_inputs_are_named_after_the_forward_or_the_dict():
    pair = input_binding.bind((torch.zeros(1), torch.ones(1)), TwoIn(), "f")
    assert pair.names == ["image1", "image2"] and not pair.keywords
    named = input_binding.bind({"image2": np.ones(1, np.int64), "image1": torch.zeros(1)}, TwoIn(), "f")
    assert named.names == ["image2", "image1"] and named.keywords  # by keyword: any order
    other = input_binding.bind({"a": torch.zeros(1), "b": torch.zeros(1)}, TwoIn(), "f")
    assert other.names == ["a", "b"] and not other.keywords  # not the forward's names: in order
    assert named.tensors[0].dtype == torch.int64


def test_inputs_from_a_file(tmp_path):
    np.savez(tmp_path / "x.npz", input_ids=np.arange(4)[None], attention_mask=np.ones((1, 4), bool))
    got = example_inputs.load(str(tmp_path / "x.npz"), TwoIn())
    assert got.names == ["input_ids", "attention_mask"] and got.tensors[1].dtype == torch.bool
    torch.save({"image1": torch.zeros(2)}, tmp_path / "x.pt")
    assert example_inputs.load(str(tmp_path / "x.pt"), TwoIn()).keywords


def test_outputs_of_any_structure_flatten_in_a_stable_order():
    t = torch.zeros(1)
    assert [n for n, _ in torch_model.flatten(t)] == ["output"]
    assert [n for n, _ in torch_model.flatten((t, [t, t]))] == ["output_0", "output_1_0", "output_1_1"]
    out = {"logits": t, "hidden": (t, t), "aux": {"a": t}, "none": None}
    assert [n for n, _ in torch_model.flatten(out)] == ["logits", "hidden_0", "hidden_1", "aux.a"]


def test_the_torch_runner_calls_by_keyword_and_reads_flat_outputs():
    card = {"call": "keywords", "outputs": "flat", "input_names": ["image2", "image1"], "output_names": ["output"]}
    module = torch_model.as_tuple_module(TwoIn(), card)
    assert module(torch.ones(1), torch.zeros(1))[0].item() == -1.0  # image2=1, image1=0


def test_yolov5n_is_ultralytics_anchor_free_v5_and_says_so():
    pytest.importorskip("ultralytics")
    from coordinator.model import zoo as models

    model = models.REGISTRY["yolov5n"]
    net = models.build(model, models.Weights("random", "seed=0"), 0)
    assert type(net.model[-1]).__name__ == "Detect" and hasattr(net.model[-1], "dfl")  # v8's anchor-free head
    with torch.no_grad():
        assert net(torch.rand(1, 3, 64, 64))[0].shape == (1, 84, 84)  # 4 box + 80 classes, 64 anchors + 16 + 4
    assert "not the original anchor-based YOLOv5" in model.note


def test_a_family_claims_a_factorys_outputs_only_when_their_structure_matches():
    from coordinator import tasks

    maps = torch.zeros(1, 21, 8, 8)
    assert tasks.for_torch_output({"out": maps, "aux": maps}).name == "semantic_segmentation"
    assert tasks.for_torch_output({"out": maps, "embedding": torch.zeros(1, 4)}).name == "generic"
    assert tasks.for_torch_output({"out": torch.zeros(1, 4)}).name == "generic"


class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)

    def forward(self, x):
        return self.layer(x)


class LogAddExp(torch.nn.Module):
    def forward(self, x):
        return torch.logaddexp(x, -x)


@pytest.mark.parametrize("net, shape, used, not_used", [
    (Attention(), (1, 4, 16), exporters.NO_FASTPATH, ["aten::_transformer_encoder_layer_fwd"]),
    (LogAddExp(), (1, 8), exporters.DYNAMO, ["aten::logaddexp"]),
])
def test_the_export_finds_a_way_and_says_why_not_the_others(tmp_path, net, shape, used, not_used):
    done = exporters.export(net.eval(), (torch.rand(*shape),), tmp_path / "m.onnx", 17, ["x"], ["y"],
                            {"x": {0: "batch"}})
    assert done.exporter == used and (tmp_path / "m.onnx").is_file()
    assert len(done.not_used) == len(not_used)
    for why, expected in zip(done.not_used, not_used):
        assert expected in why


def test_exporter_chooses_one_exporter_and_keeps_its_own_file(tmp_path):
    import json

    folders = {}
    for exporter in ("auto", "dynamo"):
        out = tmp_path / exporter
        result = runner.invoke(app, ["bench", "--model", "tests.fixtures.tiny:tiny_cnn", "--exporter", exporter,
                                     "--engines", "torch", "--weights", "random", "--iterations", "2",
                                     "--schedule", "sequential", "--cache-dir", str(tmp_path / "cache"),
                                     "--out", str(out)])
        assert result.exit_code == 0, result.output
        model = json.loads((out / "report.json").read_text())["model"]
        folders[exporter] = model["onnx_file"]
        assert model["exporter"].startswith(exporters.TORCHSCRIPT if exporter == "auto" else exporters.DYNAMO)
    assert folders["auto"] != folders["dynamo"]  # one file per (model, exporter)


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet18", "--exporter", "tflite"], "unknown exporter 'tflite'; valid: auto, torchscript, dynamo"),
    (["--model", "m.onnx", "--exporter", "dynamo"], "is already ONNX; --exporter is for a model e2e exports"),
])
def test_bad_exporter_option(tmp_path, args, message):
    (tmp_path / "m.onnx").write_bytes(b"")
    result = runner.invoke(app, ["bench", *[str(tmp_path / a) if a == "m.onnx" else a for a in args],
                                 "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "r")])
    assert message in one_error_line(result)

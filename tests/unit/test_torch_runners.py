"""The pure parts of the runners that take the PyTorch model (TorchScript, Inductor) and of the
card loading they share (shared/torch_model.py)."""
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from coordinator.model import zoo as models
from shared import EngineUnavailable, torch_model
from tests.unit.test_runner_modules import load_runner

ROOT = Path(__file__).parents[2]
inductor = load_runner(ROOT / "runners" / "inductor" / "runner.py")
torchscript = load_runner(ROOT / "runners" / "torchscript" / "runner.py")
torch_tensorrt = load_runner(ROOT / "runners" / "torch_tensorrt" / "runner.py")


@pytest.mark.parametrize("options, message", [
    ({"mode": "max-autotune"}, "mode must be one of default, reduce-overhead, max-autotune-no-cudagraphs"),
    ({"dynamic": "yes"}, "dynamic must be true or false"),
    ({"backend": ""}, "backend must be the name"),
    ({"backend": "eager", "mode": "reduce-overhead"}, "backend 'eager' takes mode default"),
])
def test_inductor_options_name_what_is_allowed(options, message):
    with pytest.raises(ValueError, match=message):
        inductor.Options(**options)


def test_torchscript_options_are_booleans():
    with pytest.raises(ValueError, match="optimize_for_inference must be true or false"):
        torchscript.Options(optimize_for_inference=1)


@pytest.mark.parametrize("options, message", [
    ({"optimization_level": 6}, "optimization_level must be 0-5 or null"),
    ({"min_block_size": -1}, "min_block_size must be an integer >= 0"),
    ({"workspace_mb": 1.5}, "workspace_mb must be an integer >= 0"),
    ({"cache": "no"}, "cache must be true or false"),
])
def test_torch_tensorrt_options_name_what_is_allowed(options, message):
    with pytest.raises(ValueError, match=message):
        torch_tensorrt.Options(**options)


@pytest.mark.parametrize("message, operator", [
    ("Could not guard on data-dependent expression Eq(u0, 0) (unhinted: Eq(u0, 0)). (Size-like symbols: u0)\n"
     "Caused by: (torchvision/ops/boxes.py:89 in batched_nms) torchvision::nms(boxes, scores, 0.7)", "torchvision::nms"),
    ("Conversion of function aten.nonzero.default not currently supported!", "aten.nonzero.default"),
    ("no operator here", ""),
])
def test_torch_tensorrt_names_the_operator_an_error_names(message, operator):
    assert torch_tensorrt._operator_in(message) == operator


def test_graph_breaks_are_counted_by_reason_with_the_operator_dynamo_names():
    counters = defaultdict(Counter)
    nonzero = ("Dynamic shape operator\n  Explanation: Operator `aten.nonzero.default`'s output shape depends on "
               "input Tensor data.\n\n  Developer debug context: aten.nonzero.default\n\n For more details...")
    item = ("Unsupported Tensor.item() call with capture_scalar_outputs=False\n  Explanation: ...\n\n"
            "  Developer debug context: call_method TensorVariable() item () {}\n")
    counters["graph_break"].update({nonzero: 2, nonzero + " at another line": 1, item: 3})
    counters["stats"]["unique_graphs"] = 5
    counters["inductor"]["fxgraph_cache_miss"] = 4
    assert inductor._capture_report(counters) == {
        "graphs": 5, "graph_breaks": 6, "fx_graph_cache": {"hits": 0, "misses": 4},
        "graph_break_reasons": {"Dynamic shape operator: aten.nonzero.default": 3,
                                "Unsupported Tensor.item() call with capture_scalar_outputs=False": 3}}


def test_trace_warnings_are_summarised_by_kind_and_message():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("`torch.jit.trace` is deprecated.\nmore", FutureWarning)
        warnings.warn("Converting a tensor to a Python boolean", UserWarning)
        warnings.warn("Converting a tensor to a Python boolean", UserWarning)
    assert torchscript._summary(caught) == {
        "count": {"FutureWarning": 1, "UserWarning": 2},
        "messages": ["Converting a tensor to a Python boolean", "`torch.jit.trace` is deprecated."]}
    assert torchscript._operator_in("Could not export operator 'aten::unique_dim' here") == "aten::unique_dim"
    assert torchscript._operator_in("no operator named") == ""


def test_a_user_factory_is_imported_from_where_the_coordinator_found_it(tmp_path, monkeypatch):
    (tmp_path / "userpkg").mkdir()
    (tmp_path / "userpkg" / "__init__.py").write_text("")
    (tmp_path / "userpkg" / "nets.py").write_text("def make():\n    return 'built'\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    card = {"factory": "userpkg.nets:make", "factory_path": str(tmp_path)}
    assert torch_model._factory(card)() == "built" and sys.path[-1] == str(tmp_path)  # after the runner's own
    with pytest.raises(EngineUnavailable, match="userpkg.nets:missing here .the coordinator found it in"):
        torch_model._factory({**card, "factory": "userpkg.nets:missing"})


def test_the_coordinator_records_a_user_factorys_folder_and_not_an_installed_one():
    assert models.factory_root(models.resolve("tests.fixtures.tiny:tiny_cnn").model) == str(ROOT)
    assert models.factory_root(models.resolve("resnet18").model) is None


def test_the_tuple_module_calls_a_detector_as_its_card_says_and_orders_its_outputs():
    torch = pytest.importorskip("torch")
    from torch import nn

    class Detector(nn.Module):  # torchvision's shape: a list of CHW images in, a list of dicts out
        def forward(self, images):
            x = images[0]
            return [{"boxes": x.reshape(-1, 4), "scores": x.flatten()[:2], "labels": torch.tensor([3, 4])}]

    card = {"call": "list_of_images", "outputs": "first_dict", "output_names": ["scores", "labels", "boxes"]}
    out = torch_model.as_tuple_module(Detector(), card)(torch.ones(1, 2, 4))
    assert isinstance(out, tuple) and [tuple(t.shape) for t in out] == [(2,), (2,), (2, 4)]
    assert out[1].tolist() == [3, 4]
    classifier = torch_model.as_tuple_module(nn.Flatten(), {"task": "classification", "output_names": ["logits"]})
    assert [tuple(t.shape) for t in classifier(torch.ones(1, 2, 3))] == [(1, 6)]


def test_importing_a_model_package_leaves_pil_as_it_was(tmp_path, monkeypatch):
    """Ultralytics replaces PIL.Image.open on import (a wrapper that pip-installs pi-heif); e2e
    reads and refuses images with Pillow's own."""
    from PIL import Image

    (tmp_path / "patching_models.py").write_text("from PIL import Image\nImage.open = lambda *a, **k: None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = Image.open
    torch_model.import_module("patching_models")
    assert Image.open is before


@pytest.mark.parametrize("precision, expected", [("fp32", "fp32"), ("bf16", "bf16")])
def test_autocast_precision_is_read_back_from_the_arithmetic_that_ran(precision, expected):
    import types

    import numpy as np
    import torch
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2)).eval()
    runner = types.SimpleNamespace(spec=types.SimpleNamespace(precision=precision), device=torch.device("cpu"),
                                   precision_detail={})

    def call():
        with torch.inference_mode(), torch_model.autocast(runner):
            return model(torch.ones(1, 3, 8, 8))

    call()  # LazyLinear takes its shape
    assert torch_model.ran_in(runner, call) == expected
    counts = runner.precision_detail["arithmetic_ops_by_type"]
    assert counts == {"float32" if expected == "fp32" else "bfloat16": 2}
    out = torch_model.host_arrays([call()])[0]
    assert out.dtype == np.float32  # numpy has no bf16: parity compares fp32
    # a model with no convolution or matrix product did its arithmetic in fp32, whatever was asked
    assert torch_model.ran_in(runner, lambda: torch.ones(3) * 2) == "fp32"

"""Which Triton backend a run gets, from the server this environment has (found by
runners/triton/server.py), the device and the engine options; and why not, when it cannot."""
import sys
from pathlib import Path

import pytest

from shared import EngineUnavailable, RunSpec
from shared.runner import _parse_options
from tests.unit.test_runner_modules import load_runner

RUNNER = Path(__file__).parents[2] / "runners" / "triton" / "runner.py"


@pytest.fixture(scope="module")
def runner():
    return load_runner(RUNNER)


def choose(runner, monkeypatch, backends, device="cpu", stub="/stub", libpython="/lib/libpython3.so.1.0", **options):
    server = runner._sibling("server")
    pytriton = "onnxruntime" not in backends
    origin = "nvidia-pytriton 0.7.0" if pytriton else "NVIDIA's tritonserver image"
    found = server.Installation("/bin/tritonserver", {b: "/backends/" + b for b in backends}, origin,
                                pytriton=pytriton, stub=stub if pytriton else None)
    monkeypatch.setattr(server, "find", lambda: found)
    monkeypatch.setattr(server, "libpython", lambda: libpython)
    r = runner.TritonRunner(RunSpec(engine="triton", model_path="/m.onnx", inputs_path="/i.npz", device=device))
    r.options = _parse_options(runner.Options, options)
    r.available_impl()
    return r.backend


def test_auto_picks_the_native_onnxruntime_backend_where_there_is_one(runner, monkeypatch):
    assert choose(runner, monkeypatch, ["python"]) == "python"
    assert choose(runner, monkeypatch, ["onnxruntime", "python", "tensorrt"]) == "onnxruntime"
    assert choose(runner, monkeypatch, ["onnxruntime", "python", "tensorrt"], device="cuda:0") == "onnxruntime"
    assert choose(runner, monkeypatch, ["onnxruntime", "tensorrt"], device="cuda:0", backend="tensorrt") == "tensorrt"


@pytest.mark.parametrize("backends, device, options, reason", [
    (["python"], "cuda:0", {}, "has no onnxruntime backend.*gpu.Dockerfile"),
    (["python"], "cpu", {"backend": "onnxruntime"}, "nvidia-pytriton 0.7.0 has no onnxruntime backend \\(it has: python\\)"),
    (["onnxruntime", "tensorrt"], "cpu", {"backend": "tensorrt"}, "NVIDIA GPUs only"),
    (["onnxruntime", "python"], "cuda:0", {"backend": "python"}, "CPU build"),
    (["onnxruntime"], "cpu", {"tensorrt_accelerator": True}, "onnxruntime backend's, on a GPU"),
])
def test_what_cannot_run_here_is_skipped_with_the_way_out(runner, monkeypatch, backends, device, options, reason):
    with pytest.raises(EngineUnavailable, match=reason):
        choose(runner, monkeypatch, backends, device=device, **options)


def test_no_stub_or_no_shared_libpython_for_this_python(runner, monkeypatch):
    with pytest.raises(EngineUnavailable, match="no python-backend stub for this Python"):
        choose(runner, monkeypatch, ["python"], stub=None)
    with pytest.raises(EngineUnavailable, match="shared library libpython.*install libpython"):
        choose(runner, monkeypatch, ["python"], libpython="")


def test_no_server_at_all(runner, monkeypatch):
    monkeypatch.setattr(runner._sibling("server"), "find", lambda: None)
    r = runner.TritonRunner(RunSpec(engine="triton", model_path="/m.onnx", inputs_path="/i.npz"))
    r.options = runner.Options()
    with pytest.raises(EngineUnavailable, match="no tritonserver in this environment"):
        r.available_impl()


def test_options_are_checked(runner):
    from shared.errors import ProtocolError

    with pytest.raises(ProtocolError, match="protocol must be one of http, grpc"):
        _parse_options(runner.Options, {"protocol": "udp"})
    with pytest.raises(ProtocolError, match="backend must be one of auto, onnxruntime, tensorrt, python"):
        _parse_options(runner.Options, {"backend": "openvino"})
    assert runner.Options().protocol == "http"


def test_the_operator_in_an_onnx_runtime_message(runner):
    message = "Could not find an implementation for Rulu(14) node with name 'r'"
    client = runner._sibling("client")
    assert client.operator_in(message) == "Rulu" and client.operator_in("other") is None
    assert "e2e_triton_server" in sys.modules  # siblings load once, by path

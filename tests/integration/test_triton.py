"""Triton Inference Server, for real: the runner in its own virtualenv starts the tritonserver
bundled with nvidia-pytriton, serves a tiny ONNX graph through the python backend (ONNX
Runtime inside), and is measured from its client over gRPC and HTTP."""
import os
import sysconfig

import numpy as np
import pytest

from coordinator.engines import discover
from coordinator.launchers import VenvLauncher
from shared import RunSpec, load_samples, save_samples
from tests.fixtures.onnx_models import matmul_relu, matmul_relu_reference, matmul_relu_samples

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_triton_serves_the_model_and_splits_the_call(protocol, cache, tmp_path):
    engine = discover()["triton"]
    launcher = VenvLauncher(cache)
    launcher.prepare(engine)
    samples = matmul_relu_samples()
    save_samples(str(tmp_path / "inputs.npz"), samples)
    spec = RunSpec(engine="triton", model_path=str(matmul_relu(tmp_path / "m.onnx")),
                   inputs_path=str(tmp_path / "inputs.npz"), warmup=6, iterations=5, threads=2,
                   engine_options={"protocol": protocol})

    result = launcher.run(engine, spec, tmp_path / "io", timeout=600)

    log = (tmp_path / "io" / "runner.log").read_text()
    assert result.status == "ok", f"{result.reason}\n{log}"
    assert result.engine_version == "2.51.0" and result.precision == "fp32"
    assert result.latency_ms.count == 5
    assert result.environment["executable"].startswith(str(cache / "venvs"))
    settings = result.settings
    assert settings["backend"] == "python" and settings["protocol"] == protocol
    assert settings["url"].startswith("127.0.0.1:")
    # the row says plainly what ran: ONNX Runtime inside the python backend, with the run's threads
    assert settings["runs"].startswith("python backend running onnxruntime 1.32.0 inside Triton 2.51.0")
    assert result.precision_detail["runs"] == settings["runs"]
    session = settings["onnxruntime_in_backend"]
    assert session["intra_op_num_threads"] == 2 and session["providers"] == ["CPUExecutionProvider"]
    assert session["executable"].startswith(str(cache / "venvs"))  # the stub ran the venv's Python
    # ... on that interpreter's own libpython (the venv is made from the one running this test)
    assert os.path.dirname(session["libpython"]) == os.path.realpath(sysconfig.get_config_var("LIBDIR")), session
    # the server's statistics split each warm-up call
    phases = result.breakdown_ms
    assert set(phases) == {"queue", "compute_input", "compute_infer", "compute_output", "server_other",
                           "client_and_transport"}, phases
    assert phases["compute_infer"] > 0 and phases["client_and_transport"] > 0
    assert sum(phases.values()) < 10 * result.latency_ms.max  # the same calls, not a sum over many
    # outputs through Triton equal the graph's
    outputs = load_samples(str(tmp_path / "io" / "outputs.npz"))
    for sample, out in zip(samples, outputs):
        np.testing.assert_allclose(out["y"], matmul_relu_reference(sample), rtol=1e-5, atol=1e-6)
    # stopped cleanly: the server said so, and neither it nor its stub is left
    assert "--- tritonserver log (exit code 0) ---" in log
    processes = settings["server_processes"]
    assert [p["role"] for p in processes] == ["tritonserver", "python backend stub"], processes
    assert all(p["peak_rss_mb"] > 0 for p in processes)
    for p in processes:
        assert not _alive(p["pid"]), f"{p} is still running"


def test_a_model_triton_cannot_load_fails_in_compile_with_the_reason(cache, tmp_path):
    """A broken model fails where ONNX Runtime inside the backend rejects it, and the server
    started for it is stopped all the same."""
    engine = discover()["triton"]
    launcher = VenvLauncher(cache)
    launcher.prepare(engine)
    samples = matmul_relu_samples()
    save_samples(str(tmp_path / "inputs.npz"), samples)
    model = matmul_relu(tmp_path / "m.onnx")
    # same inputs and outputs, an operator no ONNX Runtime has
    data = model.read_bytes().replace(b"Relu", b"Rulu")
    model.write_bytes(data)
    spec = RunSpec(engine="triton", model_path=str(model), inputs_path=str(tmp_path / "inputs.npz"),
                   warmup=1, iterations=2, threads=1)

    result = launcher.run(engine, spec, tmp_path / "io", timeout=600)

    log = (tmp_path / "io" / "runner.log").read_text()
    assert result.status in ("failed", "unsupported") and result.stage == "compile", f"{result.reason}\n{log}"
    assert result.reason.startswith("Triton could not load the model: ")
    assert "Rulu" in result.error.message and "server log:" in result.error.message  # the reason in full, with the log
    assert "--- tritonserver log (exit code 0) ---" in log


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone for our purpose
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"

"""`--device cuda:N` through Docker: the container is given GPU N alone, which it numbers 0.

The runner must be told cuda:0 (ONNX Runtime, TensorRT and NVML would look for GPU N and
find none), and the row must still say which of the host's GPUs it ran on. No Docker daemon
and no GPU needed: the launcher's options are built offline and the container is faked.
"""
import json
from pathlib import Path
from typing import Any, Dict

import pytest

from coordinator.engines import discover
from coordinator.launchers import docker as docker_launcher
from coordinator.launchers.docker import DockerLauncher
from shared import RunSpec
from shared.entry import RESULT, SPEC
from shared.result import Latency, RunResult


def gpu_spec(tmp_path: Path, device: str = "cuda:1") -> RunSpec:
    for name in ("model", "data"):
        (tmp_path / name).mkdir(exist_ok=True)
    return RunSpec(engine="ort", model_path=str(tmp_path / "model" / "model.onnx"),
                   inputs_path=str(tmp_path / "data" / "inputs.npz"), cache_dir=str(tmp_path / "cache"),
                   device=device)


def test_the_runner_is_told_the_one_gpu_the_container_sees(tmp_path):
    launcher = DockerLauncher(memory_limit_mb=1024)  # its Docker client is made on first use: never here
    io_dir = tmp_path / "io"
    options = launcher.container_options(discover()["ort"], gpu_spec(tmp_path), io_dir)
    assert launcher._client is None
    inside = json.loads((io_dir / SPEC).read_text())
    assert inside["device"] == "cuda:0"
    [request] = options["device_requests"]
    assert request["DeviceIDs"] == ["1"] and request["Capabilities"] == [["gpu"]]


def test_a_cpu_run_stays_on_the_cpu_with_no_gpu(tmp_path):
    io_dir = tmp_path / "io"
    options = DockerLauncher(memory_limit_mb=1024).container_options(discover()["ort"], gpu_spec(tmp_path, "cpu"),
                                                                      io_dir)
    assert json.loads((io_dir / SPEC).read_text())["device"] == "cpu"
    assert options["device_requests"] == []


def test_the_row_records_the_physical_gpu(tmp_path):
    """What the runner wrote (OpenPPL puts its CUDA ordinal, 0 in the container, in settings)."""
    result = RunResult("openppl", "failed", reason="x", settings={"engine": "cuda", "device_id": 0})
    docker_launcher.record_physical_device(result, gpu_spec(tmp_path, "cuda:3"))
    assert result.settings == {"engine": "cuda", "physical_device": "cuda:3", "device_id": 3}
    cpu = docker_launcher.record_physical_device(RunResult("ort", "failed", reason="x"), gpu_spec(tmp_path, "cpu"))
    assert cpu.settings == {}


class FakeContainer:
    """A container whose runner wrote its result as a runner does: from the spec it was given."""

    attrs: Dict[str, Any] = {"State": {"OOMKilled": False}}

    def wait(self, timeout: float) -> Dict[str, int]:
        return {"StatusCode": 0}

    def logs(self, stdout: bool, stderr: bool) -> bytes:
        return b""

    def reload(self) -> None:
        pass

    def remove(self, force: bool) -> None:
        pass


class FakeContainers:
    def run(self, **options: Any) -> FakeContainer:
        io_dir = Path(options["labels"]["e2e.io"])
        spec = RunSpec.load(str(io_dir / SPEC))
        RunResult(spec.engine, "ok", latency_ms=Latency.from_values([1.0, 2.0]),
                  settings={"device_id": spec.device_index}).save(str(io_dir / RESULT))
        return FakeContainer()


class FakeClient:
    containers = FakeContainers()


@pytest.mark.parametrize("device, expected", [("cuda:1", {"device_id": 1, "physical_device": "cuda:1"}),
                                              ("cuda:0", {"device_id": 0, "physical_device": "cuda:0"})])
def test_a_run_reads_back_a_result_that_names_the_physical_gpu(tmp_path, device, expected):
    launcher = DockerLauncher(memory_limit_mb=1024)
    launcher._client = FakeClient()
    result = launcher.run(discover()["ort"], gpu_spec(tmp_path, device), tmp_path / "io", timeout=60)
    assert result.status == "ok", result.reason
    assert result.settings == expected

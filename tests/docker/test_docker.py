"""The runner images, built and run for real: same answers as the virtualenvs, locked down."""
import json

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.engines import discover
from coordinator.launchers import DockerLauncher
from shared import RunSpec, save_samples
from tests.fixtures.onnx_models import matmul_relu, matmul_relu_samples

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Runs inside a container started with the launcher's own options; prints what it can see.
PROBE = """
import json, os, socket
def writable(path):
    try:
        open(os.path.join(path, ".probe"), "w").close(); return True
    except OSError:
        return False
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2); network = True
except OSError:
    network = False
print(json.dumps({"uid": os.getuid(), "interfaces": sorted(os.listdir("/sys/class/net")), "network": network,
                  "model_writable": writable("/model"), "root_writable": writable("/"), "io_writable": writable("/io"),
                  "cap_eff": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"].strip()}))
"""


def bench(tmp_path, cache, launcher):
    out = tmp_path / launcher
    result = CliRunner().invoke(app, [
        "bench", "--model", "tests.fixtures.tiny:tiny_cnn", "--engines", "ort,openvino,tvm", "--weights", "random",
        "--device", "cpu", "--warmup", "1", "--iterations", "3", "--launcher", launcher, "--out", str(out),
        "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    return {r["engine"]: r for r in json.loads((out / "report.json").read_text())["results"]}


def test_docker_rows_agree_with_the_venv_rows(built_images, tmp_path, cache):
    docker_rows, venv_rows = bench(tmp_path, cache, "docker"), bench(tmp_path, cache, "venv")
    for engine in ("ort", "openvino", "tvm"):
        d, v = docker_rows[engine], venv_rows[engine]
        assert d["status"] == v["status"] == "ok", (d["reason"], v["reason"])
        assert (d["launcher"], v["launcher"]) == ("docker", "venv")
        assert d["engine_version"] == v["engine_version"]
        assert d["parity"]["passed"] and v["parity"]["passed"]
        assert d["environment"]["in_container"] and d["environment"]["executable"] == "/opt/venv/bin/python"
        assert d["start_overhead_s"] is not None and d["start_overhead_s"] < 30


def test_the_container_is_locked_down(built_images, docker_client, tmp_path):
    engine = discover()["ort"]
    save_samples(str(tmp_path / "inputs.npz"), matmul_relu_samples())
    spec = RunSpec(engine="ort", model_path=str(matmul_relu(tmp_path / "model.onnx")),
                   inputs_path=str(tmp_path / "inputs.npz"), cache_dir=str(tmp_path / "cache"))
    options = DockerLauncher().container_options(engine, spec, tmp_path / "io")
    container = docker_client.containers.run(**{**options, "entrypoint": ["python", "-c", PROBE]})
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
        seen = json.loads(container.logs().decode().strip().splitlines()[-1])
        host = container.attrs["HostConfig"]
    finally:
        container.remove(force=True)
    assert seen["uid"] != 0
    assert seen["interfaces"] == ["lo"] and not seen["network"]
    assert not seen["model_writable"] and not seen["root_writable"] and seen["io_writable"]
    assert int(seen["cap_eff"], 16) == 0 and seen["no_new_privs"] == "1"
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"]
    assert host["Memory"] > 0 and host["PidsLimit"] > 0 and "no-new-privileges" in host["SecurityOpt"]
    assert {m["Destination"]: m["RW"] for m in container.attrs["Mounts"]}["/model"] is False

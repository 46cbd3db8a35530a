"""The Triton runner's server lifecycle (runners/triton/server.py) with stand-in executables for
the tritonserver binary: how a server that dies, hangs or loses its port is reported and
stopped. The real server runs in tests/integration/test_triton.py."""
import os
import stat
import time
from pathlib import Path

import pytest

from tests.unit.test_runner_modules import load_runner

SERVER = Path(__file__).parents[2] / "runners" / "triton" / "server.py"


@pytest.fixture(scope="module")
def server():
    return load_runner(SERVER)


def fake(tmp_path: Path, script: str) -> str:
    """An executable that stands where tritonserver would, and records its arguments."""
    path = tmp_path / "tritonserver"
    path.write_text("#!/bin/sh\necho \"$@\" >> " + str(tmp_path / "argv") + "\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def start(server, tmp_path, script, timeout_s=5.0, ready=lambda url: False):
    installation = server.Installation(fake(tmp_path, script), {"python": str(tmp_path / "backends" / "python")}, "test")
    s = server.Server(installation, str(tmp_path / "repo"), str(tmp_path), "grpc")
    return s, lambda: s.start(ready, timeout_s)


def test_a_server_that_exits_is_an_error_with_its_log(server, tmp_path):
    s, go = start(server, tmp_path, "echo 'error: failed to load backend'; exit 3")
    with pytest.raises(server.ServerFailed, match="exited with code 3 before it was ready.*failed to load backend"):
        go()
    assert s.process is None  # stopped and forgotten
    argv = (tmp_path / "argv").read_text().split()
    assert "--grpc-address=127.0.0.1" in argv and "--allow-http=false" in argv and "--allow-metrics=false" in argv
    port = next(a for a in argv if a.startswith("--grpc-port="))
    assert int(port.split("=")[1]) > 0 and "--model-control-mode=explicit" in argv


def test_a_server_that_never_gets_ready_is_stopped_after_the_timeout(server, tmp_path):
    s, go = start(server, tmp_path, "echo starting; exec sleep 60", timeout_s=1.0)
    began = time.monotonic()
    with pytest.raises(server.ServerFailed, match="not ready after 1 s.*startup_timeout_s.*starting"):
        go()
    assert time.monotonic() - began < 20  # SIGTERM ended it, no 60 s sleep
    assert s.process is None


def test_a_taken_port_is_retried_on_new_ports(server, tmp_path):
    _, go = start(server, tmp_path, "echo 'Failed to listen on 127.0.0.1: Address already in use'; exit 1")
    with pytest.raises(server.ServerFailed, match="already in use"):
        go()
    ports = [a for a in (tmp_path / "argv").read_text().split() if a.startswith("--grpc-port=")]
    assert len(ports) == 3  # three attempts, each on a port probed afresh


def test_ready_returns_the_loopback_url(server, tmp_path):
    s, go = start(server, tmp_path, "exec sleep 60", ready=lambda url: url.startswith("127.0.0.1:"))
    try:
        url = go()
        assert url == f"127.0.0.1:{s.port}" and s.process.poll() is None
        assert s.process.pid in s.pids()
    finally:
        code = s.stop()
    assert code is not None and s.process is None


def test_the_stub_loads_this_interpreters_libpython(server, tmp_path, monkeypatch):
    """The python backend's stub links libpython by name: the interpreter's own folder comes
    first on the server's library path, then the bundled libraries, then the caller's."""
    import sysconfig

    monkeypatch.setenv("LD_LIBRARY_PATH", "/elsewhere")
    installation = server.Installation("/bin/true", {}, "test", libraries=["/bundled"])
    env = server.Server(installation, str(tmp_path), str(tmp_path), "grpc")._environment()
    assert env["LD_LIBRARY_PATH"].split(":") == [sysconfig.get_config_var("LIBDIR"), "/bundled", "/elsewhere"]
    assert sysconfig.get_paths()["purelib"] in env["PYTHONPATH"].split(os.pathsep)


def test_a_python_without_a_shared_libpython_is_said(server, tmp_path, monkeypatch):
    """Debian's python3 without the libpython3.X package: the stub could not start."""
    import sys
    import sysconfig

    real = sysconfig.get_config_var
    monkeypatch.setattr(sysconfig, "get_config_var", lambda k: str(tmp_path) if k == "LIBDIR" else real(k))
    assert server.libpython() == ""
    (tmp_path / "libpython{}.{}.so.1.0".format(*sys.version_info[:2])).write_bytes(b"")
    assert server.libpython() == str(tmp_path / "libpython{}.{}.so.1.0".format(*sys.version_info[:2]))

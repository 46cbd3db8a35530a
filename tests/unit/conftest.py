import pytest

from coordinator.config import default_cache
from coordinator.engines import discover
from coordinator.launchers import VenvLauncher
from coordinator.launchers.venv import READY


@pytest.fixture(scope="session")
def tvm_launcher(cache):
    """A venv launcher whose tvm environment is made already (the tests' cache, then the user's):
    unit tests run real TVM there, and never make it (minutes, and PyPI)."""
    engine = discover()["tvm"]
    for folder in (cache, default_cache()):
        launcher = VenvLauncher(folder)
        if (launcher.env_dir(engine) / READY).is_file():
            return launcher
    pytest.skip("no tvm environment yet (`e2e bench --engines tvm` or the integration tests make it)")


@pytest.fixture(scope="session")
def tvm_python(tvm_launcher):
    return tvm_launcher.python(discover()["tvm"])

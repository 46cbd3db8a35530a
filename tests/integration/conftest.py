import pytest

from coordinator.engines import discover
from coordinator.launchers import VenvLauncher


@pytest.fixture(scope="session")
def tvm_launcher(cache):
    """A venv launcher with the tvm engine's environment, made in the tests' cache when it is not
    there yet (minutes, and PyPI): the tests that run real TVM never skip for want of it."""
    launcher = VenvLauncher(cache)
    launcher.prepare(discover()["tvm"])
    return launcher


@pytest.fixture(scope="session")
def tvm_python(tvm_launcher):
    return tvm_launcher.python(discover()["tvm"])

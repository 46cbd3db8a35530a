"""The Docker tests' base image (tests/conftest.py `python_base`): where the daemon reaches no
registry, the README's `pytest` makes the local base itself, or skips saying how to run them."""
import pytest
from docker.errors import APIError, ImageNotFound

from tests import conftest


class Daemon:
    """A Docker client whose daemon has no image and reaches no registry."""

    class images:
        @staticmethod
        def get(name):
            raise ImageNotFound(f"No such image: {name}")

    class api:
        @staticmethod
        def inspect_distribution(name):
            raise APIError("500", explanation='Get "https://registry-1.docker.io/v2/": dial tcp: no such host')


@pytest.fixture
def script(tmp_path, monkeypatch):
    monkeypatch.delenv("E2E_TEST_PYTHON_BASE", raising=False)
    path = tmp_path / "offline-base.sh"
    monkeypatch.setattr(conftest, "OFFLINE_SCRIPT", path)
    return path


def test_the_variable_names_the_base(monkeypatch):
    monkeypatch.setenv("E2E_TEST_PYTHON_BASE", "mine:1")
    assert conftest.python_base(Daemon()) == "mine:1"


def test_without_a_registry_the_offline_base_is_made(script, tmp_path):
    script.write_text(f'echo "$1" > {tmp_path / "made"}\n')
    assert conftest.python_base(Daemon()) == conftest.OFFLINE_BASE
    assert (tmp_path / "made").read_text().strip() == conftest.OFFLINE_BASE


def test_without_a_registry_or_debootstrap_it_skips_saying_how(script):
    script.write_text("echo 'debootstrap is needed: apt-get install debootstrap' >&2; exit 1\n")
    with pytest.raises(pytest.skip.Exception) as skipped:
        conftest.python_base(Daemon())
    message = str(skipped.value)
    assert "registry-1.docker.io" in message and "(debootstrap is needed: apt-get install debootstrap)" in message
    assert f"E2E_TEST_PYTHON_BASE={conftest.OFFLINE_BASE} pytest" in message

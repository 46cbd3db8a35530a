import os
from pathlib import Path

import pytest

from coordinator.images import build as images


@pytest.fixture(scope="session")
def cache() -> Path:
    """Engine environments and exports, kept between test sessions (they take minutes to make)."""
    path = Path(os.environ.get("E2E_TEST_CACHE") or Path.home() / ".cache" / "e2e-tests")
    path.mkdir(parents=True, exist_ok=True)
    return path


ENGINES = ["ort", "openvino", "tvm"]  # the CPU runner images


@pytest.fixture(scope="session")
def docker_client():
    try:
        return images.client()
    except images.DockerUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def built_images(docker_client):
    """The CPU runner images, built from docker-bake.hcl through the coordinator's own builder.
    E2E_TEST_PYTHON_BASE names a local base image where no registry is reachable (CI makes one
    with docker/offline-base.sh); E2E_TEST_CA_CERT a CA bundle pip must trust in the build."""
    overrides = {"PYTHON_BASE": os.environ["E2E_TEST_PYTHON_BASE"]} if os.environ.get("E2E_TEST_PYTHON_BASE") else {}
    ca = os.environ.get("E2E_TEST_CA_CERT")
    outcomes = images.build(ENGINES, ca_cert=Path(ca) if ca else None, log=print, overrides=overrides)
    failed = [f"{o.tag}: {o.message}" for o in outcomes if not o.ok]
    assert not failed, failed
    return {o.target: o for o in outcomes}

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
    """The CPU runner images, built from docker-bake.hcl through the coordinator's own builder,
    on `python_base`. E2E_TEST_CA_CERT: a CA bundle pip must trust in the build (default: the
    one pip trusts here, PIP_CERT or REQUESTS_CA_BUNDLE, as behind a TLS-inspecting proxy)."""
    overrides = {"PYTHON_BASE": python_base(docker_client)}
    ca = os.environ.get("E2E_TEST_CA_CERT") or os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE")
    outcomes = images.build(ENGINES, ca_cert=Path(ca) if ca else None, log=print, overrides=overrides)
    failed = [f"{o.tag}: {o.message}" for o in outcomes if not o.ok]
    assert not failed, failed
    return {o.target: o for o in outcomes}


OFFLINE_BASE = "e2e-offline-python:bookworm"  # the tag .ci/run gives docker/offline-base.sh's image
OFFLINE_SCRIPT = Path(__file__).parents[1] / "docker" / "offline-base.sh"


def python_base(docker_client) -> str:
    """The runner images' Python base: E2E_TEST_PYTHON_BASE when set; else the bake file's when
    the daemon has it or reaches its registry; else the local one docker/offline-base.sh makes
    (from Debian's packages, once; as .ci/run does), or a skip that says how to run these tests."""
    import subprocess

    from docker.errors import APIError, ImageNotFound

    if os.environ.get("E2E_TEST_PYTHON_BASE"):
        return os.environ["E2E_TEST_PYTHON_BASE"]
    default = images.load_bake().variables["PYTHON_BASE"]
    try:
        docker_client.images.get(default)
        return default
    except ImageNotFound:
        pass
    try:
        docker_client.api.inspect_distribution(default)  # the daemon's own way out, not this process's
        return default
    except APIError as e:
        unreachable = " ".join(str(e.explanation or e).split())[:200]
    print(f"The Docker daemon cannot pull {default} ({unreachable}): making {OFFLINE_BASE} with {OFFLINE_SCRIPT.name}...")
    try:
        done = subprocess.run(["bash", str(OFFLINE_SCRIPT), OFFLINE_BASE], capture_output=True, text=True, timeout=1800)
        said = (done.stderr or done.stdout).strip().splitlines() or [f"exit code {done.returncode}"]
        failed = said[-1] if done.returncode else ""
    except subprocess.TimeoutExpired:
        failed = "timed out after 30 minutes"
    if failed:
        pytest.skip(f"no registry is reachable from the Docker daemon ({unreachable}) and docker/offline-base.sh could "
                    f"not make a local base ({failed}): make one with `bash docker/offline-base.sh "
                    f"{OFFLINE_BASE}` (needs debootstrap and a Debian mirror) and run "
                    f"`E2E_TEST_PYTHON_BASE={OFFLINE_BASE} pytest`, as .ci/run does")
    return OFFLINE_BASE

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cache() -> Path:
    """Engine environments and exports, kept between test sessions (they take minutes to make)."""
    path = Path(os.environ.get("E2E_TEST_CACHE") or Path.home() / ".cache" / "e2e-tests")
    path.mkdir(parents=True, exist_ok=True)
    return path

"""Every benchmark runs, in its smoke mode: nothing else runs them between the sessions that read
their figures, and they broke unseen before (harness_overhead.py after ORT's code moved). Their
figures are not checked here: timing is not a test on a shared VM."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))


def test_every_benchmark_is_here():
    assert "harness_overhead.py" in SCRIPTS and "rank_stability.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_benchmark_runs_to_its_figure(script, cache):
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--smoke"], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "E2E_CACHE_DIR": str(cache)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines and any(c.isdigit() for c in lines[-1]), done.stdout[-3000:]  # its figure, last

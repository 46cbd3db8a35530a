"""benchmarks/gpu_check.sh, the check kept for a lent GPU machine, stays runnable: here, without a
CUDA device, it says why it skips and exits 0."""
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"


def test_without_a_gpu_it_skips_with_the_reason(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: run benchmarks/gpu_check.sh itself")
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == (f"gpu_check: skipped: no CUDA device (torch {torch.__version__}: "
                                   "torch.cuda.is_available() is False)")

"""benchmarks/gpu_check.sh, the check kept for a lent GPU machine, stays runnable: without a CUDA
device it says why it skips and exits 0; with one (`pytest -m gpu`) every row passes its checks."""
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


@pytest.mark.gpu
def test_on_a_gpu_every_row_passes_the_check(tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip(f"no CUDA device (torch {torch.__version__}: torch.cuda.is_available() is False)")
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True, timeout=900,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout + done.stderr

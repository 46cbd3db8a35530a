"""A precision the parity tables do not know fails parity with a note; it never raises."""
import numpy as np
import pytest

from coordinator import tasks
from coordinator.report.parity import TOLERANCES

REFERENCE = [{"y": np.array([1.0, 2.0, 3.0], np.float32)}]


@pytest.mark.parametrize("family", tasks.names())
def test_unknown_precision_fails_parity_with_a_note(family):
    p = tasks.get(family).compare(REFERENCE, REFERENCE, "fp16 (conv/gemm)")
    assert not p.passed and p.precision == "fp16 (conv/gemm)"
    assert "'fp16 (conv/gemm)'" in p.note and all(name in p.note for name in TOLERANCES)

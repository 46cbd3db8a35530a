"""Faults a runner causes on request, for the fault-injection tests (`RunSpec.fault`, which
the coordinator fills from `E2E_FAULT=engine=fault`). Each is what a real engine does when it
goes wrong, done for real in the real runner, so the tests see what users would see.

  abort             SIGABRT during load, as a native crash does
  exit              exit code 3 during load, without a result
  hang              sleep during load until the launcher's timeout kills it
  oom               allocate during load until the memory limit stops it
  truncated_result  result.json cut off in the middle
  invalid_result    result.json that parses but breaks the schema
  nan               every output that parity sees is NaN
  wrong_shape       every output that parity sees loses its last element
  mixed_precision   result.json names a precision that is not one of the precisions

Apart from these, `E2E_KILL_AT=phase[,phase]` makes whichever process reaches that phase of
making a cache entry (export, inputs, reference, venv, convert, tuning) SIGKILL itself there:
the entry is made but not yet published, the worst moment to die (`kill_at`).
"""
import json
import os
import signal
import time
from typing import Any, Optional

FAULTS = ("abort", "exit", "hang", "oom", "truncated_result", "invalid_result", "nan", "wrong_shape",
          "mixed_precision")


def in_load(fault: str, memory_limit_mb: Optional[int]) -> None:
    if fault == "abort":
        os.abort()
    if fault == "exit":
        os._exit(3)
    if fault == "hang":
        time.sleep(10 ** 6)
    if fault == "oom":
        if not memory_limit_mb and not os.path.exists("/.dockerenv"):  # a container has its limit
            raise RuntimeError("the oom fault needs a memory limit (--memory-limit or a container)")
        hog = []
        while True:
            hog.append(b"\x01" * (64 << 20))  # written, so the pages are really used


def outputs(fault: str, sample: Any) -> Any:
    import numpy as np

    if fault == "nan":
        return {k: np.full_like(v, np.nan, dtype=np.float32) for k, v in sample.items()}
    if fault == "wrong_shape":
        return {k: v.reshape(-1)[:-1] for k, v in sample.items()}
    return sample


def result_text(fault: str, data: dict) -> Optional[str]:
    """What the entry point writes as result.json instead of the real result, if anything."""
    text = json.dumps(data)
    if fault == "truncated_result":
        return text[: len(text) // 2]
    if fault == "invalid_result":
        return json.dumps(dict(data, status="splendid", latency_ms="fast"))
    if fault == "mixed_precision":  # what the OpenPPL runner once said on CUDA
        return json.dumps(dict(data, precision="fp16 (conv/gemm)"))
    return None



def kill_at(phase: str) -> None:
    """The kill-at test hook: SIGKILL, which nothing can catch or clean up after, at `phase`."""
    if phase and phase in os.environ.get("E2E_KILL_AT", "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)

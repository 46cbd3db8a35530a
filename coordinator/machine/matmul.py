"""How fast this machine multiplies two matrices at a precision, on some threads: the best rate of
the libraries PyTorch has for the product (coordinator/machine/peak.py caches it as the peak).

A rate is the best of several products, not their median: what the hardware reaches, not what a
shared VM gave on average. A product is sized to take about 0.2 s (a precision the hardware does
not accelerate, fp16 on most CPUs, runs a small one rather than for minutes).
"""
import time
from typing import Any, List, Optional

REPEATS = 5
TARGET_S = 0.2  # one product at about this long
PROBE_N = 256  # sizes the product: its rate says how large one of TARGET_S is
MAX_N = 4096


def best_rate(precision: str, threads: int, device: str) -> Optional[float]:
    """GFLOP/s (int8: GOP/s) of the fastest library PyTorch has for this product here; None where
    it has none."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rates = []
        for product in _products(precision, device):
            rate = 2 * PROBE_N ** 3 / _best(product(PROBE_N), 3)  # the best of three: one slow call misleads
            n = int(min(MAX_N, max(PROBE_N, (TARGET_S * rate / 2) ** (1 / 3)))) // 64 * 64  # int8 on a GPU: x8
            rates.append(2 * n ** 3 / _best(product(n), REPEATS) / 1e9)
        return max(rates, default=None)
    finally:
        torch.set_num_threads(before)


def _products(precision: str, device: str) -> List[Any]:
    """Functions of n giving one n x n product to time, one per library that has it here: torch.mm
    (MKL for fp32 on a CPU, which takes a slower path on AMD CPUs: 99 against oneDNN's 225 GFLOP/s
    measured here), oneDNN's linear on a CPU, cuBLAS on a GPU, torch._int_mm for int8."""
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    makers = []
    if precision == "int8":
        def int8(n: int) -> Any:
            a, b = (torch.randint(-128, 127, (n, n), dtype=torch.int8, device=device) for _ in range(2))
            return lambda: (torch._int_mm(a, b), sync())
        makers.append(int8)
    else:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]

        def mm(n: int) -> Any:
            a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
            return lambda: (a @ b, sync())
        makers.append(mm)
        if device == "cpu" and torch.backends.mkldnn.is_available():
            def onednn(n: int) -> Any:
                a, b = (torch.randn(n, n).to(dtype).to_mkldnn() for _ in range(2))
                return lambda: torch._C._nn.mkldnn_linear(a, b)
            makers.append(onednn)
    usable = []
    for make in makers:
        try:
            make(64)()
            usable.append(make)
        except (RuntimeError, AttributeError):  # not in this torch, or not for this type here
            pass
    return usable


def _best(call, repeats: int) -> float:  # type: ignore[no-untyped-def]
    call()  # its first run pays for allocation and the library's kernel choice
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t)
    return best

"""What this machine's arithmetic can do at each precision: the measured peak GFLOP/s of a matrix
product (PyTorch's, oneDNN on a CPU, cuBLAS on a GPU) on a row's threads. The verdict holds the
best row's GFLOP/s against it: 75% of the fp32 peak and a quarter of the bf16 one says where the
next factor is. Measured once per machine (CPU model, flags, threads, torch), cached.

A peak is the best of several products, not their median: what the hardware reaches, not what a
shared VM gave on average. A product is sized to take about 0.2 s (a precision the hardware does
not accelerate, fp16 on most CPUs, runs a small one rather than for minutes).
"""
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from shared import atomic

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
REPEATS = 5
TARGET_S = 0.2  # one product at about this long
PROBE_N = 256  # sizes the product: its rate says how large one of TARGET_S is
MAX_N = 4096
METHOD = 2  # how the peaks are measured: a cached figure of another method is not read


def peaks(cache: Path, threads: int, device: str, identity: str, precisions=PRECISIONS,
          reached: Optional[Dict[str, float]] = None) -> Dict[str, Optional[float]]:
    """GFLOP/s (int8: GOP/s) per precision on `threads` threads of `device`, from the cache or
    measured now; None where this torch has no such product here. `identity` names the machine
    (its CPU model and flags, or its GPU). A cached peak under what a row `reached` was measured
    in a busy moment (a shared VM): it is measured again, and the higher kept."""
    import torch

    key = hashlib.sha256(json.dumps([identity, threads, device, torch.__version__, METHOD]).encode()).hexdigest()[:16]
    path = cache / "machine" / f"peaks-{key}.json"
    reached = reached or {}
    with atomic.locked(str(path)):  # two benches at once: one measures, the other reads what it wrote
        known: Dict[str, Optional[float]] = json.loads(path.read_text()) if atomic.problem(str(path)) is None else {}
        missing = [p for p in precisions if p not in known or (known[p] or 0) < reached.get(p, 0)]
        if missing:
            known.update({p: max((v for v in (_measure(p, threads, device), known.get(p)) if v), default=None)
                          for p in missing})
            atomic.write_text(str(path), json.dumps(known, indent=1))
            atomic.seal(str(path))
    return {p: known[p] for p in precisions}


def _measure(precision: str, threads: int, device: str) -> Optional[float]:
    """The best rate of the libraries PyTorch has for this product (the highest is the peak)."""
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

"""What this machine's arithmetic can do at each precision: the measured peak GFLOP/s of a matrix
product (PyTorch's, oneDNN on a CPU, cuBLAS on a GPU) on a row's threads. The verdict holds the
best row's GFLOP/s against it: 75% of the fp32 peak and a quarter of the bf16 one says where the
next factor is. Measured once per machine (CPU model, flags, threads, torch), cached; how a
product is timed is coordinator/machine/matmul.py's.
"""
import hashlib
import json
from pathlib import Path
from typing import Dict, Optional

from shared import atomic

from coordinator.machine import matmul

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
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
            known.update({p: max((v for v in (matmul.best_rate(p, threads, device), known.get(p)) if v), default=None)
                          for p in missing})
            atomic.write_text(str(path), json.dumps(known, indent=1))
            atomic.seal(str(path))
    return {p: known[p] for p in precisions}

"""Batch B: the test inputs stacked B at a time along the batch axis, and the outputs split back.

The test inputs are batch-1 samples (a classifier's (1, 3, H, W) image). A batched point stacks
consecutive samples, cycling through them, into ceil(n / B) batches of B; each engine runs those.
Its outputs are split back per sample, so parity compares every input's output with PyTorch's
at batch 1: batching must not change the outputs. Only for models with a batch axis (axis 0 of
every input and output); the coordinator refuses B > 1 for the others (a detector's list of
images).
"""
from typing import List, Sequence

from .errors import ProtocolError
from .tensors import Sample


def batched(samples: Sequence[Sample], batch: int) -> List[Sample]:
    """ceil(n / batch) samples, each `batch` consecutive inputs (cycling) stacked on axis 0."""
    import numpy as np

    if batch == 1:
        return list(samples)
    n = len(samples)
    out = []
    for start in range(0, n, batch):
        group = [samples[(start + j) % n] for j in range(batch)]
        stacked = {}
        for name in group[0]:
            shapes = {tuple(s[name].shape[1:]) for s in group}
            if len(shapes) != 1 or any(s[name].ndim == 0 for s in group):
                raise ProtocolError("batch {}: input {!r} has shapes {} across the test inputs; a batch "
                                    "needs one shape beyond axis 0 (give images of one size)".format(
                                        batch, name, sorted(shapes)))
            stacked[name] = np.ascontiguousarray(np.concatenate([s[name] for s in group], axis=0))
        out.append(stacked)
    return out


def unbatched(outputs: Sequence[Sample], samples: Sequence[Sample], batch: int) -> List[Sample]:
    """The outputs of `batched(samples, batch)` split back into one per original sample, in order
    (the inputs repeated to fill the last batch are dropped)."""
    if batch == 1:
        return list(outputs)
    n = len(samples)
    first = next(iter(samples[0]))
    sizes = [samples[i % n][first].shape[0] for i in range(len(outputs) * batch)]
    split = []  # type: List[Sample]
    for k, out in enumerate(outputs):
        rows = sizes[k * batch:(k + 1) * batch]
        for name, array in out.items():
            if array.ndim == 0 or array.shape[0] != sum(rows):
                raise ProtocolError("batch {}: output {!r} has shape {}, not {} rows on axis 0: the model "
                                    "has no batch axis there; run it at batch 1".format(
                                        batch, name, list(array.shape), sum(rows)))
        offset = 0
        for size in rows:
            split.append({name: array[offset:offset + size].copy() for name, array in out.items()})
            offset += size
    return split[:n]

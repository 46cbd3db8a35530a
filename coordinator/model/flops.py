"""How much arithmetic one call of the model is: PyTorch's own count (FlopCounterMode: matrix
products and convolutions, 2 per multiply-add) on the example inputs, at batch 1. With a row's
p50 it gives the row's GFLOP/s, which the verdict holds against the machine's measured peak
(coordinator/machine/peak.py). Counted at export, on the export's example inputs, into export.json; a
detector's count is its forward there (the boxes it proposes decide how much its heads compute).
"""
from typing import Any, Optional, Sequence


def count(model: Any, inputs: Sequence[Any], call: Any = None) -> Optional[float]:
    """FLOPs of one forward of `model` on `inputs` (a sequence of tensors), or None where
    PyTorch cannot count it. `call(model, inputs)` calls it when the model is not model(*inputs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            call(model, inputs) if call else model(*inputs)
    except Exception:  # a model the counter cannot follow: no figure rather than a wrong one
        return None
    total = counter.get_total_flops()
    return float(total) if total else None


def of_card(card_path: Any, inputs: Sequence[Any]) -> Optional[float]:
    """GFLOP of one call of an export's PyTorch model (its card) on `inputs` (numpy arrays in input
    order), for an export made before the count was part of it."""
    import torch

    from shared import torch_model

    model, card = torch_model.build(str(card_path))
    flops = count(torch_model.as_tuple_module(model, card), [torch.from_numpy(a) for a in inputs])
    return round(flops / 1e9, 4) if flops else None

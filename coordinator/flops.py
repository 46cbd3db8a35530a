"""How much arithmetic one call of the model is: PyTorch's own count (FlopCounterMode: matrix
products and convolutions, 2 per multiply-add) on the example inputs, at batch 1. With a row's
p50 it gives the row's GFLOP/s, which the verdict holds against the machine's measured peak
(coordinator/peak.py). A detector's count is its forward on the example image: the boxes it
proposes there decide how much its heads compute.
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


def of_export(artifact: Any, inputs_path: Any) -> Optional[float]:
    """GFLOP of one call of an export's PyTorch model on its first test input, counted once and
    kept beside the export (its folder is sealed whole); None for an ONNX file given as is."""
    import json

    from shared import atomic, torch_model
    from shared.tensors import load_samples

    if artifact.torch_card is None:
        return None
    kept = artifact.dir.parent / (artifact.dir.name + ".gflop.json")
    if atomic.problem(str(kept)) is None:
        return json.loads(kept.read_text())["gflop"]
    import torch

    model, card = torch_model.build(str(artifact.torch_card))
    sample = load_samples(str(inputs_path))[0]
    flops = count(torch_model.as_tuple_module(model, card), [torch.from_numpy(a) for a in sample.values()])
    gflop = round(flops / 1e9, 4) if flops else None
    atomic.write_text(str(kept), json.dumps({"gflop": gflop, "counted_on": "the first test input, batch 1"}))
    atomic.seal(str(kept))
    return gflop

"""A model's example inputs as values (a tensor, a tuple or a dict of tensors or numpy arrays,
whatever `--inputs` gave: example_inputs.py) bound to the model's forward: named after its
parameters where they match, passed by keyword or in order, as torch tensors on the CPU.
"""
import inspect
from dataclasses import dataclass
from typing import Any, List

from coordinator.model.user_code import UserCodeError


@dataclass
class ExampleInputs:
    names: List[str]  # the ONNX input names, in the order the exported graph takes them
    tensors: List[Any]  # torch tensors, in that order
    keywords: bool  # the model is called model(**{name: tensor}) rather than model(*tensors)
    source: str  # for the report: how they were given


def bind(value: Any, net: Any, spec: str) -> ExampleInputs:
    """`value` (a tensor, a tuple or a dict of tensors or arrays) as the named inputs of `net`."""
    import numpy as np
    import torch

    def tensor(v: Any, name: str) -> Any:
        if isinstance(v, np.ndarray):
            return torch.from_numpy(v)
        if isinstance(v, torch.Tensor):
            return v.detach().cpu()  # exported and saved as numpy on the CPU
        raise UserCodeError(f"--inputs {spec}: {name} is a {type(v).__name__}; expected a tensor, a tuple or "
                            "a dict of tensors (or numpy arrays)")

    parameters = _parameters(net)
    if isinstance(value, dict):
        if not value:
            raise UserCodeError(f"--inputs {spec}: no tensors")
        names = [str(k) for k in value]
        # keys the forward takes as parameters are passed by keyword, else in order
        keywords = "**" in parameters or set(names) <= set(parameters)
        return ExampleInputs(names, [tensor(v, repr(k)) for k, v in value.items()], keywords, spec)
    items = list(value) if isinstance(value, (tuple, list)) else [value]
    if not items:
        raise UserCodeError(f"--inputs {spec}: no tensors")
    positional = [p for p in parameters if p != "**"]
    names = [positional[i] if i < len(positional) else f"input_{i}" for i in range(len(items))]
    return ExampleInputs(names, [tensor(v, f"item {i}") for i, v in enumerate(items)], False, spec)


def _parameters(net: Any) -> List[str]:
    """The forward's parameter names in order; "**" when it takes any keyword."""
    try:
        signature = inspect.signature(net.forward)
    except (TypeError, ValueError):
        return []
    out = []
    for p in signature.parameters.values():
        if p.kind == p.VAR_KEYWORD:
            out.append("**")
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            out.append(p.name)
    return out

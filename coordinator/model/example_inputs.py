"""A model's example inputs (`--inputs`): a function `package.module:make_inputs` returning a
tensor, a tuple or a dict of tensors, or a `.npz` / `.pt` file of named tensors. Any number of
inputs, any rank and dtype; they are exported by name and become the test inputs.

Without `--inputs` a factory's model is assumed to take one RGB image batch (`assumed_image`).
How the values given are named after the model's forward is input_binding.py's.
"""
import hashlib
from pathlib import Path
from typing import Any, Optional

from coordinator.errors import UsageError
from coordinator.model.input_binding import ExampleInputs, bind
from coordinator.model.user_code import calling, describe

FILES = (".npz", ".pt", ".pth")


def is_file(spec: str) -> bool:
    return spec.endswith(FILES)


def check(spec: str) -> None:
    """A wrong `--inputs` fails before the (slow) export."""
    if is_file(spec):
        if not Path(spec).is_file():
            raise UsageError(f"--inputs: no such file: {spec}")
    elif ":" not in spec:
        raise UsageError(f"--inputs {spec!r}: expected package.module:function or a .npz / .pt file")


def identity(spec: str) -> str:
    """What the export's cache key takes of `--inputs`: the file's or the function's module's
    content, read without importing anything."""
    import importlib.util

    path: Optional[Path] = Path(spec) if is_file(spec) else None
    if path is None:
        try:
            found = importlib.util.find_spec(spec.partition(":")[0])
        except (ImportError, ValueError):
            found = None
        path = Path(found.origin) if found and found.origin and Path(found.origin).is_file() else None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path else ""
    return f"{spec}:{digest}"


def assumed_image(height: int, width: int) -> ExampleInputs:
    import torch

    return ExampleInputs(["input"], [torch.rand(1, 3, height, width)], False,
                         f"assumed: one RGB image of {height}x{width} (float NCHW, batch 1)")


def load(spec: str, net: Any) -> ExampleInputs:
    """The inputs `spec` names, called or read, as the model `net` takes them."""
    check(spec)
    if is_file(spec):
        value = _read(Path(spec))
    else:
        module_name, _, attr = spec.partition(":")
        from shared import torch_model

        with calling(f"importing the inputs function {spec}", module_name):
            function = getattr(torch_model.import_module(module_name), attr)
        with calling(f"the inputs function {spec}", module_name):
            value = function()
    return bind(value, net, spec)


def _read(path: Path) -> Any:
    if path.suffix == ".npz":
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError) as e:
            raise UsageError(f"--inputs: cannot read {path} as .npz ({describe(e)})") from None
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UsageError(f"--inputs: cannot read {path} as tensors saved by torch.save ({describe(e)})") from None

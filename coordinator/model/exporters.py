"""torch -> ONNX by the first way that works, saying which and why not the others.

1. The TorchScript exporter (`dynamo=False`): what every zoo model exports with.
2. The same with the attention fast path off: `nn.MultiheadAttention` and
   `nn.TransformerEncoderLayer` in eval mode take fused kernels (`aten::_native_multi_head_attention`,
   `aten::_transformer_encoder_layer_fwd`) that the TorchScript exporter cannot write; with the
   fast path off they trace the plain ops (torchvision's vision transformer).
3. The dynamo exporter (`dynamo=True`, `torch.export`-based), given `dynamic_shapes` (it cannot
   convert the `dynamic_axes` the first two take for a module of `*tensors`). It needs onnxscript.
   A dim the model specialises comes out static (torch 2.14 relaxes it rather than failing).
"""
import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple

from coordinator.model.user_code import describe

CHOICES = ("auto", "torchscript", "dynamo")  # --exporter: the chain, or one exporter only
TORCHSCRIPT = "torch.onnx.export(dynamo=False)"
NO_FASTPATH = "torch.onnx.export(dynamo=False), attention fast path off"
DYNAMO = "torch.onnx.export(dynamo=True)"


@dataclass
class Exported:
    exporter: str  # the one that wrote the file
    not_used: List[str] = field(default_factory=list)  # "exporter: why not", for those tried before it
    log: str = ""  # warnings and prints of every attempt, for export.log


class ExportFailed(Exception):
    """Every exporter failed; `failures` says how each did, `errors` keeps the exceptions."""

    def __init__(self, failures: List[str], errors: List[BaseException]) -> None:
        super().__init__("; ".join(failures))
        self.failures, self.errors = failures, errors


def export(net: Any, args: Tuple[Any, ...], path: Path, opset: int, input_names: List[str],
           output_names: List[str], dynamic_axes: Dict[str, Dict[int, str]], only: str = "auto") -> Exported:
    """The first exporter of the chain (`only`: of that exporter's attempts) that writes `path`."""
    import torch

    def torchscript() -> None:
        torch.onnx.export(net, args, str(path), dynamo=False, opset_version=opset, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes)

    def no_fastpath() -> None:
        with _fastpath_off():
            torchscript()

    def dynamo() -> None:
        import importlib.util

        if importlib.util.find_spec("onnxscript") is None:
            raise ModuleNotFoundError("the dynamo exporter needs onnxscript: pip install onnxscript")
        dims: Dict[str, Any] = {}
        shapes = tuple({axis: dims.setdefault(name, torch.export.Dim(name)) for axis, name in
                        dynamic_axes.get(n, {}).items()} or None for n in input_names)
        if _varargs(net):
            shapes = (shapes,)
        torch.onnx.export(net, args, str(path), dynamo=True, opset_version=opset, input_names=input_names,
                          output_names=output_names, dynamic_shapes=shapes, verbose=False)

    chain = {"torchscript": [(TORCHSCRIPT, torchscript), (NO_FASTPATH, no_fastpath)], "dynamo": [(DYNAMO, dynamo)]}
    attempts: List[Tuple[str, Callable[[], None]]] = chain.get(only) or chain["torchscript"] + chain["dynamo"]

    failures: List[str] = []
    errors: List[BaseException] = []
    log = io.StringIO()
    for name, attempt in attempts:
        if name == NO_FASTPATH and not _has_attention(net):
            continue  # nothing the remedy changes
        with _quiet(log):
            try:
                with torch.no_grad():
                    attempt()
            except Exception as e:
                failures.append(f"{name}: {_why(e)}")
                errors.append(e)
                print(f"--- {name} failed: {_why(e)}", file=log)
                path.unlink(missing_ok=True)
                continue
        return Exported(name, failures, log.getvalue())
    raise ExportFailed(failures, errors)


def _why(e: BaseException) -> str:
    """One line of why an exporter failed. The dynamo exporter's message opens with its generic
    "next steps"; the root cause is the first line of its exception summary."""
    text = str(e)
    if "## Exception summary" in text:
        cause = [line for line in text.split("## Exception summary", 1)[1].splitlines() if line.strip()]
        if cause:
            return re.sub(r"^<class '(?:[\w.]+\.)?(\w+)'>: ", r"\1: ", cause[0].strip())
    return describe(e)


@contextlib.contextmanager
def _quiet(log: io.StringIO) -> Iterator[None]:
    """The exporters' warnings and prints (a screenful on torchvision's detectors; dynamo's
    progress lines; the TorchScript exporter's graph, printed by C++ to file descriptor 1 when it
    fails) go to export.log, not the terminal. Standard error is left alone: the progress
    spinner draws there from its own thread."""
    sys.stdout.flush()
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+") as printed, warnings.catch_warnings(record=True) as caught, \
            contextlib.redirect_stdout(log):
        warnings.simplefilter("always")
        os.dup2(printed.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)
            printed.seek(0)
            log.write(printed.read())
            log.write("".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught))


@contextlib.contextmanager
def _fastpath_off() -> Iterator[None]:
    import torch

    mha = torch.backends.mha
    was = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(was)


def _has_attention(net: Any) -> bool:
    from torch import nn

    return any(isinstance(m, (nn.MultiheadAttention, nn.TransformerEncoderLayer)) for m in net.modules())


def _varargs(net: Any) -> bool:
    """Whether the module's forward takes `*tensors` (the flattening wrapper): torch.export wants
    that argument's shapes as one tuple."""
    import inspect

    return any(p.kind == p.VAR_POSITIONAL for p in inspect.signature(net.forward).parameters.values())


def flat_module(net: Any, input_names: Sequence[str], keywords: bool) -> Any:
    """`net` as a module of tensors in (input-name order) and a flat tuple of tensors out
    (shared.torch_model.flatten's order): what the exporters take whatever the model's structure."""
    from torch import nn

    from shared import torch_model

    names = list(input_names)

    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = net

        def forward(self, *tensors: Any) -> Tuple[Any, ...]:
            out = torch_model.call(self.model, "keywords" if keywords else "tensors", tensors, names)
            return tuple(t for _, t in torch_model.flatten(out))

    return Flat().eval()

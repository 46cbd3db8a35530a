"""The PyTorch model of an export, from its card (`torch_model.json`): every runner that takes the
PyTorch model (`consumes: torch`) builds, calls and reads it here, the one way.

The card holds the factory, its arguments and the state dict file, so a runner rebuilds exactly
the weights that were exported; and, as the model's family decided at export, how to call the
model (`call`) and read its outputs (`outputs`). torch is imported lazily: `shared/` imports with
no engine installed.
"""
import contextlib
import hashlib
import importlib
import itertools
import json
import os
import sys
from typing import Any, Dict, Iterator, List, Sequence, Tuple

from .errors import EngineUnavailable, ProtocolError

# `call`: model(*tensors), model(**{input name: tensor}) (a user's inputs given as a dict of the
# forward's parameters), or model([chw, ...]) as torchvision's detectors take images.
# `outputs`: a tensor or a tuple of them in output-name order, the first of a list of dicts, a
# dict (torchvision's segmenters) by output name, or any nesting of tuples, lists and dicts of
# tensors flattened in order (`flatten`: a user's model of any output structure).
CALLS = ("tensors", "keywords", "list_of_images")
OUTPUTS = ("tensors", "first_dict", "dict", "flat")


def calling_convention(card: Dict[str, Any]) -> Tuple[str, str]:
    """(call, outputs) of a model card; a card cached before these keys has only its task."""
    detector = card.get("task") == "detection"
    call = card.get("call", "list_of_images" if detector else "tensors")
    outputs = card.get("outputs", "first_dict" if detector else "tensors")
    if call not in CALLS or outputs not in OUTPUTS:
        raise ProtocolError("torch_model.json: call {!r} / outputs {!r}, expected one of {} / {}".format(
            call, outputs, ", ".join(CALLS), ", ".join(OUTPUTS)))
    return call, outputs


def read_card(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def state_dict_path(card_path: str, card: Dict[str, Any]) -> str:
    return os.path.join(os.path.dirname(card_path), card["state_dict"])


def weights_digest(card_path: str, card: Dict[str, Any]) -> str:
    """The state dict file's sha256: what a runner keys a model derived from it by (the card
    alone is the same for every weights of one factory)."""
    digest = hashlib.sha256()
    with open(state_dict_path(card_path, card), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(card_path: str) -> Tuple[Any, Dict[str, Any]]:
    """(the eval-mode module with the exported weights, on the CPU; its card)."""
    import torch

    card = read_card(card_path)
    state = torch.load(state_dict_path(card_path, card), map_location="cpu", weights_only=True)
    try:
        return _with_weights(_factory(card), card["kwargs"], state).eval(), card
    except ModuleNotFoundError as e:  # the factory imports what it needs when called (transformers)
        raise EngineUnavailable("the model's factory {} needs the package {!r}, which this engine's environment "
                                "lacks: install it there, or run the engines that take the ONNX file".format(
                                    card["factory"], e.name)) from None


@contextlib.contextmanager
def pil_kept() -> Iterator[None]:
    """Undo what a model's package patches globally while it is imported or builds a model:
    Ultralytics replaces PIL.Image.open with a wrapper that pip-installs pi-heif the first time
    PIL cannot identify a file, which would change how e2e itself reads (and refuses) images."""
    try:
        from PIL import Image
    except ImportError:  # a runner environment without Pillow
        yield
        return
    image_open = Image.open
    try:
        yield
    finally:
        Image.open = image_open


def import_module(name: str) -> Any:
    """importlib.import_module, with `pil_kept`."""
    with pil_kept():
        return importlib.import_module(name)


def _factory(card: Dict[str, Any]) -> Any:
    """The factory function; a user's module (not an installed package) is imported from where
    the coordinator found it (the card's `factory_path`), after the runner's own packages."""
    module_name, _, attr = card["factory"].partition(":")
    root = card.get("factory_path")
    if root and root not in sys.path:
        sys.path.append(root)
    try:
        return getattr(import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        where = " (the coordinator found it in {}, which this environment cannot see)".format(root) if root else ""
        raise EngineUnavailable("cannot import the model's factory {} here{}: {}; install it in the engine's "
                                "environment or run a zoo model".format(card["factory"], where, e)) from None


def _with_weights(factory: Any, kwargs: Dict[str, Any], state: Any) -> Any:
    """The module with the exported weights. Its random initialisation would be thrown away,
    so build it on the meta device and take the state dict's tensors as they are; a factory
    that cannot be built there, or keeps tensors the state dict lacks, is built normally."""
    import torch

    try:
        with torch.device("meta"):
            model = factory(**kwargs)
        model.load_state_dict(state, assign=True)
        if not any(t.is_meta for t in itertools.chain(model.parameters(), model.buffers())):
            return model
    except Exception:
        pass
    model = factory(**kwargs)
    model.load_state_dict(state)
    return model


def fp32_math(device: Any) -> Dict[str, Any]:
    """Full fp32 arithmetic, set and read back. Every engine is judged against the fp32
    reference: PyTorch may run fp32 convolutions in TF32 on Ampere and newer (cuDNN's default),
    and float32 matmuls in TF32 or bf16 when asked for a lower `float32_matmul_precision`."""
    import torch

    torch.set_float32_matmul_precision("highest")
    read = {"float32_matmul_precision": torch.get_float32_matmul_precision()}
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        read["tf32"] = torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
    return read


# bf16 and fp16 run as PyTorch's own mixed precision: autocast, which casts each op's inputs by
# its policy (convolutions and matrix products in the lower type, reductions and softmax kept in
# fp32), so any model runs, detectors' box arithmetic included; its outputs come back as fp32.
REDUCED = {"bf16": "bfloat16", "fp16": "float16"}
# the ops whose output type says what the arithmetic ran in (as seen under inference_mode)
ARITHMETIC = ("conv1d", "conv2d", "conv3d", "convolution", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "linear", "mm", "addmm", "bmm", "baddbmm", "matmul",
              "scaled_dot_product_attention")
DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def autocast(runner: Any) -> Any:
    """The context one call of the model runs in at the spec's precision (`runner.device` set):
    autocast to bf16 or fp16, nothing at fp32. A fresh one each call: autocast's state is per
    thread, and a throughput loop calls from several."""
    import torch

    if runner.spec.precision not in REDUCED:
        return contextlib.nullcontext()
    return torch.autocast(device_type=runner.device.type, dtype=getattr(torch, REDUCED[runner.spec.precision]))


def ran_in(runner: Any, run: Any) -> str:
    """The row's precision, read back from one call (`run()`, in the model's autocast): the spec's
    when its type did the arithmetic (all of it, or part: `runner.precision_detail` has the
    counts), fp32 when none did. Sets `runner.precision_detail`."""
    kind, counts = read_back(run)
    runner.precision_detail = {"arithmetic_ops_by_type": counts, "how": "autocast"}
    wanted = REDUCED.get(runner.spec.precision, "float32")
    return runner.spec.precision if kind == runner.spec.precision or (kind == "mixed" and wanted in counts) \
        else (kind if kind in DTYPES.values() else "fp32")


def read_back(run: Any) -> Tuple[str, Dict[str, int]]:
    """What one call's convolutions and matrix products ran in (`run()` makes the call, in the
    model's autocast): the precision ("mixed" when they differ, "" when the model has none) and
    the count of such ops per type, as PyTorch's dispatcher saw them."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: Dict[str, int] = {}

    class Seen(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            if func.overloadpacket.__name__ in ARITHMETIC and isinstance(out, torch.Tensor):
                name = str(out.dtype).replace("torch.", "")
                seen[name] = seen.get(name, 0) + 1
            return out

    with Seen():
        run()
    kinds = {DTYPES.get(k, k) for k in seen}
    return (kinds.pop() if len(kinds) == 1 else "mixed" if kinds else ""), seen


def host_arrays(tensors: Sequence[Any]) -> List[Any]:
    """Tensors as numpy arrays the caller may keep: on the host, and fp32 where autocast left
    bf16 or fp16 (numpy has no bf16; parity compares against fp32)."""
    import torch

    return [(t.float() if t.dtype in (torch.bfloat16, torch.float16) else t).cpu().numpy().copy() for t in tensors]


def prepare(runner: Any) -> Tuple[Any, Dict[str, Any], Tuple[Any, ...]]:
    """What every runner that compiles the PyTorch model does first: torch's threads at the
    spec's budget (inter-op 1, as for every engine), `runner.device`, full fp32 math (read back
    into `runner.settings`), `runner.output_names` from the card, and the model built on the
    device as a module of tensors in and a tuple out (`as_tuple_module`).
    Returns (that module, the card, the first sample as tensors on the device)."""
    import torch

    torch.set_num_threads(runner.spec.threads)
    torch.set_num_interop_threads(1)
    runner.device = torch.device(runner.spec.device)
    runner.settings.update(fp32_math(runner.device))
    model, card = build(runner.spec.model_path)
    runner.output_names = list(card["output_names"])
    example = tuple(torch.from_numpy(a).to(runner.device) for a in runner.samples[0].values())
    return as_tuple_module(model.to(runner.device), card), card, example


def call(model: Any, call_as: str, tensors: Sequence[Any], names: Sequence[str] = ()) -> Any:
    """The model called as its card says, on tensors in input-name order (`names`)."""
    if call_as == "keywords":
        return model(**dict(zip(names, tensors)))
    return model(list(tensors)) if call_as == "list_of_images" else model(*tensors)


def flatten(out: Any, prefix: str = "output") -> List[Tuple[str, Any]]:
    """(name, tensor) for every tensor in a nesting of tuples, lists and dicts, depth first in
    their own order (a dict's insertion order): a tensor alone is `output`, a tuple's items
    `output_0`, `output_1`, a dict's values their keys, nested names joined by a dot. Leaves
    that are not tensors (None, numbers) are left out: an engine has no such output."""
    if hasattr(out, "shape") and hasattr(out, "dtype"):
        return [(prefix, out)]
    if isinstance(out, dict):
        top = prefix == "output"
        return [pair for key, value in out.items()
                for pair in flatten(value, str(key) if top else "{}.{}".format(prefix, key))]
    if isinstance(out, (tuple, list)):
        return [pair for i, value in enumerate(out) for pair in flatten(value, "{}_{}".format(prefix, i))]
    return []


def output_tensors(out: Any, outputs: str, names: Sequence[str]) -> List[Any]:
    """The model's outputs as tensors in output-name order."""
    if outputs == "flat":
        return [t for _, t in flatten(out)]
    if outputs == "first_dict":
        return [out[0][name] for name in names]
    if outputs == "dict":
        return [out[name] for name in names]
    # as many as there are names: a YOLO model also returns its raw feature maps, not exported
    return (list(out) if isinstance(out, (tuple, list)) else [out])[:len(names)]


def as_tuple_module(model: Any, card: Dict[str, Any]) -> Any:
    """The model as a module of tensors in (input-name order) and a tuple of tensors out
    (output-name order): what torch.jit.trace and torch.compile take and give back whole."""
    from torch import nn

    call_as, outputs = calling_convention(card)
    names = list(card["output_names"])
    inputs = list(card.get("input_names", ()))

    class TupleOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Tuple[Any, ...]:
            return tuple(output_tensors(call(self.model, call_as, tensors, inputs), outputs, names))

    return TupleOut().eval()

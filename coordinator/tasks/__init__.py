"""Model families: what a correct output is, one file each.

A family (`detection`, `classification`, `generic`, ...) is one `Task` subclass in a module of
this package, found by scanning it: adding a family is adding a file. It owns how the model is
exported (example arguments, tensor names, dynamic axes) and called by the PyTorch runner, how
test images become inputs, how an engine's outputs are judged against PyTorch's (parity), its
task metric on a labelled dataset, and the picture the report draws of its outputs.

The artifact keeps the family's name (`task` in export.json and report.json); `get(name)`
resolves it to the object. Importing this package does not import torch.
"""
import functools
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from shared.tensors import Sample

from coordinator.report import parity
from coordinator.report.accuracy import Accuracy
from coordinator.errors import UsageError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
FALLBACK = "generic"  # what a model no family claims is


@dataclass
class ExportSignature:
    """What `torch.onnx.export` is given besides the module."""

    args: Tuple[Any, ...]  # example arguments, traced
    input_names: List[str]
    output_names: List[str]
    dynamic_axes: Dict[str, Dict[int, str]]


class Task:
    """A model family. The defaults are a plain model: one NCHW image batch in, tensors out,
    compared elementwise, no task metric, no picture. A family overrides what differs."""

    #: the name in export.json, report.json and the model zoo; the registry key
    name = ""
    #: how the PyTorch runner calls the model: "tensors" (model(*inputs)) or "list_of_images"
    #: (model([chw, ...]), torchvision's detectors)
    torch_call = "tensors"
    #: how it reads the outputs: "tensors" (a tensor or a tuple of them, in output-name order) or
    #: "first_dict" (the first element of a list of dicts, by output name)
    torch_outputs = "tensors"
    #: the `--dataset` kinds (dataset.Dataset.kind) its metric scores
    dataset_kinds: Tuple[str, ...] = ()
    #: Parity.method of a comparison that could not start (an unknown precision)
    parity_method = "tensor"
    #: whether `picture` draws anything (the report keeps the first test input only then)
    draws = False
    #: whether axis 0 of every input and output is a batch axis, so that batch B > 1 can stack
    #: B test inputs into one call (shared.batching); a detector taking a list of images has none
    batch_axis = True

    # -- recognising a model whose family was not given ------------------------------------
    def claims_torch_output(self, output: Any) -> bool:
        """Whether a factory's module, called on a (1, 3, H, W) batch, is of this family."""
        return False

    def claims_onnx_outputs(self, names: Sequence[str]) -> bool:
        """Whether an ONNX file given as is, with these output names, is of this family."""
        return False

    # -- export -----------------------------------------------------------------------------
    def export_signature(self, height: int, width: int) -> ExportSignature:
        import torch

        return ExportSignature((torch.rand(1, 3, height, width),), ["input"], ["output"],
                               {"input": {0: "batch"}, "output": {0: "batch"}})

    def torch_card(self) -> Dict[str, str]:
        """The keys of the export's torch_model.json that tell the PyTorch runner (which does not
        import the coordinator) how to call the model and read its outputs."""
        return {"call": self.torch_call, "outputs": self.torch_outputs}

    # -- test inputs ------------------------------------------------------------------------
    def preprocess(self, image: Any, size: Tuple[int, int]) -> np.ndarray:
        """One RGB PIL image as the model's input array. Default: the ImageNet convention most
        image backbones expect (shorter side to 256/224 of the crop, centre crop, mean/std),
        NCHW with batch 1."""
        from PIL import Image

        h, w = size
        scale = 256 / 224
        short = round(min(h, w) * scale)
        iw, ih = image.size
        r = short / min(iw, ih)
        image = image.resize((max(w, round(iw * r)), max(h, round(ih * r))), Image.BILINEAR)
        left, top = (image.size[0] - w) // 2, (image.size[1] - h) // 2
        x = np.asarray(image.crop((left, top, left + w, top + h)), dtype=np.float32) / 255.0
        x = (x - IMAGENET_MEAN) / IMAGENET_STD
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def preprocessing(self, size: Tuple[int, int]) -> str:
        """`preprocess` in words, for the report."""
        h, w = size
        return (f"RGB, shorter side resized to {round(min(h, w) * 256 / 224)}, centre crop {h}x{w}, "
                "scaled to [0, 1], ImageNet mean/std normalised, NCHW with batch 1")

    # -- parity -----------------------------------------------------------------------------
    def compare(self, reference: List[Sample], outputs: List[Sample], precision: str) -> parity.Parity:
        """An engine's outputs against PyTorch's on the same inputs, at the precision it ran."""
        refused = parity.precheck(reference, outputs, precision, self.parity_method)
        return refused or self.compare_outputs(reference, outputs, precision)

    def compare_outputs(self, reference: List[Sample], outputs: List[Sample], precision: str) -> parity.Parity:
        """The family's rule, once the precision is known and the sample counts agree."""
        return parity.compare_tensors(reference, outputs, precision)

    # -- task metric ------------------------------------------------------------------------
    def metric(self, outputs: Sequence[Sample], evaluation: Dict[str, Any], data_dir: Path,
               output_names: Sequence[str]) -> Tuple[str, float, Dict[str, float]]:
        """(metric name, value, details) of `outputs` on the labelled test data; `evaluation` is
        the test data's record of it (testdata.py), `data_dir` holds its ground truth."""
        raise NotImplementedError(f"the {self.name} family has no task metric")

    def score(self, evaluation: Dict[str, Any], data_dir: Path, outputs: Sequence[Sample],
              output_names: Sequence[str], reference: Optional[Sequence[Sample]] = None) -> Accuracy:
        """An engine's metric beside PyTorch's (`reference`) on the same images."""
        name, value, details = self.metric(outputs, evaluation, data_dir, output_names)
        ref = self.metric(reference, evaluation, data_dir, output_names)[1] if reference is not None else None
        return Accuracy(name, value, ref, None if ref is None else ref - value, details)

    # -- pipeline phases outside the engine ----------------------------------------------------
    def host_phases(self, image: Any, size: Tuple[int, int], outputs: Sample) -> Dict[str, float]:
        """Median ms of the two steps the family runs on the host around the engine call, as
        {pre name: ms, post name: ms}: its pre-processing of `image` (an RGB PIL image) to `size`
        and its post-processing of one engine's `outputs`; {} when the graph holds them all."""
        return {}

    # -- the report -------------------------------------------------------------------------
    def picture(self, inputs: Sample, outputs: Sample) -> Optional[str]:
        """The outputs drawn on the input they came from (one test sample each), as base64 PNG;
        None when the family draws nothing."""
        return None


@functools.lru_cache(maxsize=None)
def _registry() -> Dict[str, Task]:
    found: Dict[str, Task] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Task) and obj.__module__ == module.__name__ and obj.name:
                if obj.name in found:
                    raise RuntimeError(f"two model families are named {obj.name!r}: "
                                       f"{type(found[obj.name]).__module__} and {module.__name__}")
                found[obj.name] = obj()
    return dict(sorted(found.items()))


def names() -> List[str]:
    return list(_registry())


def get(name: str) -> Task:
    """The family called `name`; a UsageError naming the known ones otherwise."""
    try:
        return _registry()[name]
    except KeyError:
        raise UsageError(f"unknown model family (task) {name!r}; known: {', '.join(_registry())} "
                         "(a family is a module in coordinator/tasks/)") from None


def find(name: str) -> Optional[Task]:
    """The family called `name`, or None: for reading reports, which may name a family this
    checkout lacks (or none)."""
    return _registry().get(name)


def for_torch_output(output: Any) -> Task:
    """The family that claims a factory's output on a (1, 3, H, W) batch, else the fallback."""
    return next((t for t in _registry().values() if t.claims_torch_output(output)), get(FALLBACK))


def for_onnx_outputs(output_names: Sequence[str]) -> Task:
    """The family that claims an ONNX file's output names, else the fallback."""
    return next((t for t in _registry().values() if t.claims_onnx_outputs(output_names)), get(FALLBACK))

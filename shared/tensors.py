"""Samples travel as one `.npz`: key `"<index>/<tensor name>"`, never pickled.

A sample is an ordered `name -> ndarray` map keyed by ONNX tensor names (inputs or outputs).
"""
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .errors import ProtocolError

Sample = Dict[str, np.ndarray]


def save_samples(path: str, samples: List[Sample]) -> None:
    arrays = OrderedDict()
    for i, sample in enumerate(samples):
        for name, array in sample.items():
            arrays["{}/{}".format(i, name)] = np.ascontiguousarray(array)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_samples(path: str) -> List[Sample]:
    try:
        with np.load(path, allow_pickle=False) as data:
            samples = {}  # type: Dict[int, Sample]
            for key in data.files:
                index, sep, name = key.partition("/")
                if not sep or not index.isdigit():
                    raise ProtocolError("{}: key {!r} is not '<index>/<name>'".format(path, key))
                samples.setdefault(int(index), OrderedDict())[name] = data[key]
    except (OSError, ValueError) as e:
        raise ProtocolError("cannot read tensors from {}: {}".format(path, e)) from None
    if sorted(samples) != list(range(len(samples))):
        raise ProtocolError("{}: sample indices are not 0..{}".format(path, len(samples) - 1))
    return [samples[i] for i in range(len(samples))]


def one_shape(samples: List[Sample]) -> Optional[Dict[str, List[int]]]:
    """The inputs' shapes when every sample has the same ones (what a shape-specialised
    conversion needs), else None."""
    shapes = {name: list(array.shape) for name, array in samples[0].items()}
    if all({name: list(array.shape) for name, array in s.items()} == shapes for s in samples):
        return shapes
    return None


def profile_shapes(samples: List[Sample]) -> Dict[str, List[List[int]]]:
    """[min, opt, max] per input, as TensorRT's optimization profiles take them: opt is the first
    sample's shape, min and max span all samples."""
    shapes = {}
    for name, first in samples[0].items():
        dims = list(zip(*(s[name].shape for s in samples)))
        shapes[name] = [[min(d) for d in dims], list(first.shape), [max(d) for d in dims]]
    return shapes


def graph_io(model: Any) -> Tuple[List[str], List[str]]:
    """(input names, output names) of an ONNX graph, or of the ONNX file at that path (read
    without its external weights): the inputs less the initializers older exporters list as
    inputs too (the weights), both in the graph's order."""
    if isinstance(model, str):
        import onnx

        model = onnx.load(model, load_external_data=False).graph
    weights = {t.name for t in model.initializer}
    return [i.name for i in model.input if i.name not in weights], [o.name for o in model.output]

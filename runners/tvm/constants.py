"""The shape-specialised graph (shared/specialise.py) made ready for MetaSchedule tuning: only
the weights stay initializers, which TVM imports as parameters."""
from typing import Any


def constants_as_nodes(graph: Any) -> int:
    """Turn every initializer but the float weights of rank >= 2 (convolutions, matmuls) into a
    Constant node. For tuning, TVM imports initializers as function parameters (the weights'
    layouts are then free to change), and its converters read shapes, axes, indices and
    thresholds only from constants: a parameter there fails (Reshape: "the input new shape to be
    Shape. However, the given one is relax.TensorType")."""
    from onnx import TensorProto, helper

    floats = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE)
    weight = lambda t: t.data_type in floats and len(t.dims) >= 2  # noqa: E731
    nodes = [helper.make_node("Constant", [], [t.name], value=t, name=t.name + "_constant")
             for t in graph.initializer if not weight(t)]
    keep = [t for t in graph.initializer if weight(t)]
    moved = len(nodes)
    nodes += list(graph.node)  # the constants first, before every reader
    del graph.initializer[:], graph.node[:]
    graph.initializer.extend(keep)
    graph.node.extend(nodes)
    return moved

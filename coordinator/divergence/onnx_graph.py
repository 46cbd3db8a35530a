"""An ONNX graph as the divergence search sees it: its nodes in topological order, the tensors
that can be exposed, and copies of the model with chosen tensors added as graph outputs.

Exposing a tensor as a graph output is how Polygraphy's `--mark all` works for ONNX Runtime and
for TensorRT's parser alike, and every engine that reads the ONNX export returns every graph
output, so no engine needs code of its own for it. A marked tensor must be materialised, which
stops an engine from fusing its producer away: the marked graph is not exactly the graph the
row ran (the search says so, and falls back to marking few tensors at a time).
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence, Set, Tuple

import numpy as np

# ONNX element types that cannot be compared as numbers
UNCOMPARABLE = {8}  # STRING


@dataclass(frozen=True)
class Node:
    index: int  # position in topological order
    name: str  # the node's name, or "<op>#<index>" when it has none
    op: str
    inputs: Tuple[str, ...]  # tensor names; "" for an omitted optional input
    outputs: Tuple[str, ...]
    depth: int  # longest path from a graph input, in nodes
    attributes: Tuple[Tuple[str, str], ...] = ()  # name -> value in words (tensors summarised)


class Graph:
    """The top-level graph of a model (subgraphs of If and Loop are opaque: their tensors are
    not visible outside them, so they cannot be exposed)."""

    def __init__(self, model: Any) -> None:
        import onnx

        self.model = model
        graph = model.graph
        self.inputs = [i.name for i in graph.input]
        self.initializers = {t.name for t in graph.initializer}
        self.outputs = [o.name for o in graph.output]
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
        except Exception:  # a custom op or a model past 2 GB: types only where the file gives them
            inferred = graph
        self.types: Dict[str, Any] = {v.name: v.type for v in [*inferred.value_info, *inferred.output, *inferred.input]}
        self.nodes = _ordered(graph.node, set(self.inputs) | self.initializers)
        self.producer: Dict[str, Node] = {t: n for n in self.nodes for t in n.outputs if t}
        self.exposable = [t for n in self.nodes if n.op != "Constant" for t in n.outputs if t and self._comparable(t)]
        self.exposable_set = set(self.exposable)

    @classmethod
    def load(cls, path: Path) -> "Graph":
        import onnx

        return cls(onnx.load(str(path)))

    def _comparable(self, tensor: str) -> bool:
        """A tensor of numbers (a sequence or a string tensor is not); an unknown type is tried."""
        kind = self.types.get(tensor)
        if kind is None or kind.WhichOneof("value") is None:
            return True
        return kind.WhichOneof("value") == "tensor_type" and kind.tensor_type.elem_type not in UNCOMPARABLE

    def consumers(self) -> Dict[str, List[Node]]:
        found: Dict[str, List[Node]] = {}
        for n in self.nodes:
            for t in set(n.inputs):
                found.setdefault(t, []).append(n)
        return found

    def cut(self, position: int) -> List[str]:
        """The tensors made by the first `position` nodes that a later node or the graph's
        outputs still read: everything the rest of the graph learns from them."""
        made = {t for n in self.nodes[:position] for t in n.outputs if t}
        read = {t for n in self.nodes[position:] for t in n.inputs} | set(self.outputs)
        return [t for n in self.nodes[:position] for t in n.outputs if t in made & read and t in self.exposable_set]

    def estimated_bytes(self, tensors: Sequence[str], sample: Dict[str, np.ndarray]) -> int:
        """Bytes of `tensors` for one sample, from shape inference with the sample's input
        shapes (a dimension only the data decides counts as 1)."""
        import onnx

        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        for value in model.graph.input:
            if value.name in sample:
                dims = value.type.tensor_type.shape.dim
                for dim, size in zip(dims, sample[value.name].shape):
                    dim.ClearField("dim_param")
                    dim.dim_value = size
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True).graph
        except Exception:
            inferred = model.graph
        shapes = {v.name: v.type.tensor_type for v in inferred.value_info}
        total = 0
        for t in tensors:
            kind = shapes.get(t)
            if kind is None:
                total += 4
                continue
            size = int(np.prod([d.dim_value or 1 for d in kind.shape.dim], dtype=np.int64))
            total += size * _itemsize(kind.elem_type)
        return total


def marked_copy(model: Any, tensors: Sequence[str], path: Path, types: Dict[str, Any]) -> Path:
    """`model` with `tensors` added to its graph outputs (after its own), saved at `path`.
    An output's type and rank come from shape inference, its sizes are left open (an engine may
    compute another shape for a data-dependent tensor, and the comparison reports that)."""
    import onnx
    from onnx import helper

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {o.name for o in copy.graph.output}
    for t in tensors:
        if t in present:
            continue
        kind = types.get(t)
        tensor = kind.tensor_type if kind is not None and kind.HasField("tensor_type") else None
        rank = [None] * len(tensor.shape.dim) if tensor is not None and tensor.HasField("shape") else None
        copy.graph.output.append(helper.make_tensor_value_info(t, tensor.elem_type, rank) if tensor and tensor.elem_type
                                 else helper.make_empty_tensor_value_info(t))
        present.add(t)
    large = copy.ByteSize() > 2 ** 31 - 1
    onnx.save(copy, str(path), save_as_external_data=large, location=f"{path.name}.data" if large else None)
    return path


def _ordered(nodes: Any, known: Set[str]) -> List[Node]:
    """Kahn's order (the file's order where it is already topological, as exporters write it)."""
    pending = list(enumerate(nodes))
    done: Set[str] = set(known) | {""}
    depth: Dict[str, int] = {}
    order: List[Node] = []
    while pending:
        left = []
        for position, node in pending:
            if all(t in done for t in node.input):
                d = 1 + max((depth.get(t, 0) for t in node.input if t), default=0)
                order.append(Node(len(order), node.name or f"{node.op_type}#{position}", node.op_type,
                                  tuple(node.input), tuple(node.output), d, _attributes(node)))
                for t in node.output:
                    done.add(t)
                    depth[t] = d
            else:
                left.append((position, node))
        if len(left) == len(pending):  # inputs never produced (a broken graph): keep the file's order
            order += [Node(len(order) + i, n.name or f"{n.op_type}#{p}", n.op_type, tuple(n.input), tuple(n.output),
                           0, _attributes(n)) for i, (p, n) in enumerate(left)]
            break
        pending = left
    return order


def _attributes(node: Any) -> Tuple[Tuple[str, str], ...]:
    from onnx import helper

    found = []
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        elif hasattr(value, "dims"):  # a tensor
            value = f"tensor {list(value.dims)}"
        elif hasattr(value, "node"):  # a subgraph
            value = f"graph of {len(value.node)} nodes"
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode(errors="replace") for v in value]
        found.append((a.name, str(value)[:200]))
    return tuple(found)


def _itemsize(elem_type: int) -> int:
    from onnx import helper

    try:
        return int(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize)
    except Exception:
        return 4


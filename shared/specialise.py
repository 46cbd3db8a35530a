"""Shape specialisation of an ONNX graph for its inputs' fixed shapes, for the engines that need
it (TVM, MNN): `specialised_model` gives a runner the file, made once and cached.

Exports keep shape arithmetic (Shape -> Gather -> Concat -> Reshape, Resize sizes) so that one
file runs at any image size. Some engines get it wrong: TVM 0.27's Relax ONNX importer fails on
patterns torchvision's detectors are full of (a Concat of shape tensors of mixed rank,
ReduceProd over a shape); MNN 3.6 runs the dynamic Faster R-CNN export but its boxes are wrong.
With the input shapes fixed, that arithmetic is constant: fold it here with ONNX's own tools
(shape inference with data propagation, the reference evaluator), so the engine sees constants.
What depends on the data (NonZero, TopK over a data-dependent count, NMS) stays as it is.

Imports `onnx` lazily: only runners whose environment has it call this module.
"""
import hashlib
import json
import os
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np

from .runner import Runner

INT32_MAX = 2 ** 31 - 1
MODEL, RECORD = "model.onnx", "specialise.json"  # the files of a cache entry
# Ops whose value is not a function of their inputs, or that hold subgraphs: never folded.
NOT_FOLDED = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
              "Bernoulli", "If", "Loop", "Scan"}


def specialise(model: Any, shapes: Dict[str, List[int]], max_elements: int = 1 << 20) -> Dict[str, int]:
    """Fix the inputs' shapes and fold what becomes constant, in place. Returns what it did."""
    graph = model.graph
    before = len(graph.node)
    for value in graph.input:
        for dim, size in zip(value.type.tensor_type.shape.dim, shapes.get(value.name, [])):
            dim.ClearField("dim_param")
            dim.dim_value = int(size)
    folded = 0
    while True:  # folding makes more shapes static, which makes more nodes foldable
        count = _fold_once(model, max_elements)
        folded += count
        if not count:
            break
    rewritten = _sizes_from_shapes(graph)
    whole = _whole_slices_to_identity(graph, model.opset_import)
    clamped = _clamp_sentinels(graph)
    _drop_dead_nodes(graph)
    _drop_unused_initializers(graph)
    del graph.value_info[:]  # stale: shapes are inferred again by whoever reads the graph
    return {"nodes_before": before, "nodes_after": len(graph.node), "folded": folded,
            "reduceprod_to_size": rewritten, "whole_slices_to_identity": whole,
            "clamped_int64_sentinels": clamped}


def specialised_model(runner: Runner, shapes: Dict[str, List[int]]) -> Tuple[str, Dict[str, int]]:
    """The runner's ONNX model specialised for `shapes`, as a file the engine loads, and what
    `specialise` did. Made once per model (its digest), shapes, onnx version and code of this
    module, in the runner's cache: one sealed entry (`Runner.cached`), a folder holding
    `model.onnx` (and `model.onnx.data` past protobuf's 2 GB) and `specialise.json`, so every
    rerun reuses it, and a damaged one is made again."""
    import onnx

    with open(__file__, "rb") as f:  # a change to the folding makes a new file
        code = hashlib.sha256(f.read()).hexdigest()[:16]
    made = []  # type: List[Dict[str, int]]

    def make(tmp: str) -> None:
        model = onnx.load(runner.spec.model_path)
        done = specialise(model, shapes)
        os.mkdir(tmp)
        large = model.ByteSize() > INT32_MAX  # protobuf's limit: the weights go beside it
        onnx.save(model, os.path.join(tmp, MODEL), save_as_external_data=large, location=MODEL + ".data")
        with open(os.path.join(tmp, RECORD), "w", encoding="utf-8") as f:
            json.dump(done, f, indent=1, sort_keys=True)
        made.append(done)

    entry = runner.cached("-specialised.onnx", [
        "specialise", code, onnx.__version__, {k: [int(d) for d in v] for k, v in sorted(shapes.items())}], make)
    if made:
        return os.path.join(entry, MODEL), made[0]
    with open(os.path.join(entry, RECORD), encoding="utf-8") as f:
        return os.path.join(entry, MODEL), json.load(f)


def _fold_once(model: Any, max_elements: int) -> int:
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    static = _static_shapes(onnx.shape_inference.infer_shapes(model, data_prop=True))
    constants = {t.name: t for t in graph.initializer}
    kept, folded = [], 0
    for node in graph.node:
        values = _value(node, constants, static, model.opset_import)
        if values is None or any(np.asarray(v).size > max_elements for v in values):
            kept.append(node)
            continue
        for name, value in zip(node.output, values):
            tensor = numpy_helper.from_array(np.asarray(value), name)
            graph.initializer.append(tensor)
            constants[name] = tensor
        folded += 1
    del graph.node[:]
    graph.node.extend(kept)
    return folded


def _value(node: Any, constants: Dict[str, Any], static: Dict[str, List[int]], opsets: Any) -> Any:
    """The node's outputs when they are constant, else None."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    if node.domain not in ("", "ai.onnx") or node.op_type in NOT_FOLDED:
        return None
    if node.op_type in ("Shape", "Size") and node.input[0] in static:
        shape = np.array(static[node.input[0]], dtype=np.int64)
        if node.op_type == "Size":
            return [np.array(shape.prod(), dtype=np.int64)]
        attrs = {a.name: a.i for a in node.attribute}
        return [shape[attrs.get("start", 0):attrs.get("end", len(shape))]]
    if not all(name in constants or name == "" for name in node.input):
        return None
    feeds = [numpy_helper.to_array(constants[name]) for name in node.input if name]
    single = helper.make_model(
        helper.make_graph([node], "fold", [], [helper.make_tensor_value_info(o, 0, None) for o in node.output],
                          [numpy_helper.from_array(a, n) for a, n in zip(feeds, [n for n in node.input if n])]),
        opset_imports=opsets)
    try:
        return ReferenceEvaluator(single).run(None, {})
    except Exception:  # an op the reference cannot evaluate stays in the graph
        return None


def _static_shapes(model: Any) -> Dict[str, List[int]]:
    graph = model.graph
    shapes = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor = value.type.tensor_type
        if tensor.HasField("shape") and all(d.HasField("dim_value") for d in tensor.shape.dim):
            shapes[value.name] = [d.dim_value for d in tensor.shape.dim]
    return shapes


def _sizes_from_shapes(graph: Any) -> int:
    """ReduceProd(Shape(x)) is Size(x), which the importer takes (it cannot reduce a shape)."""
    from onnx import helper, numpy_helper

    producers = {out: node for node in graph.node for out in node.output}
    nodes, count = [], 0
    for node in graph.node:
        source = producers.get(node.input[0]) if node.input else None
        if (node.op_type != "ReduceProd" or len(node.input) != 1 or source is None or source.op_type != "Shape"
                or any(a.name == "start" or a.name == "end" for a in source.attribute)):
            nodes.append(node)
            continue
        keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
        size = node.output[0] + "_size" if keepdims else node.output[0]
        nodes.append(helper.make_node("Size", [source.input[0]], [size], name=node.name + "_size"))
        if keepdims:
            graph.initializer.append(numpy_helper.from_array(np.array([1], dtype=np.int64), node.name + "_one"))
            nodes.append(helper.make_node("Reshape", [size, node.name + "_one"], [node.output[0]], name=node.name))
        count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def _whole_slices_to_identity(graph: Any, opsets: Any) -> int:
    """A Slice from 0 to INT64_MAX with step 1 on every axis it names (`x[:, None]` exports as
    one) is `x`. TVM 0.27 gives it the dim `min(2147483647, n)` (the bound clamped to int32),
    which its analyzer cannot reduce to `n` when `n` is symbolic: the Add that follows gets no
    shape, and the NMS after it neither (in torchvision's batched NMS, inside an If branch)."""
    from onnx import helper, numpy_helper

    constants = {}  # type: Dict[str, Any]
    producers = {}  # type: Dict[str, Any]
    for g in _graphs(graph):
        constants.update({t.name: t for t in g.initializer})
        producers.update({out: node for node in g.node for out in node.output})

    def value(name: str) -> Any:
        """The tensor `name` if it is a constant, folding constant-only producers (Unsqueeze of
        an outer constant, in a subgraph) on the way; else None."""
        if name not in constants:
            node = producers.get(name)
            if node is None or not all(value(i) is not None for i in node.input if i):
                return None
            values = _value(node, constants, {}, opsets)
            if values is None:
                return None
            for out, v in zip(node.output, values):
                constants[out] = numpy_helper.from_array(np.asarray(v), out)
        return numpy_helper.to_array(constants[name])

    count = 0
    for g in _graphs(graph):
        for i, node in enumerate(g.node):
            if node.op_type != "Slice":
                continue
            starts, ends = value(node.input[1]), value(node.input[2])
            steps = value(node.input[4]) if len(node.input) > 4 and node.input[4] else np.array([1])
            if (starts is None or ends is None or steps is None or (starts != 0).any()
                    or (ends < INT32_MAX).any() or (steps != 1).any()):
                continue
            g.node[i].CopyFrom(helper.make_node("Identity", [node.input[0]], list(node.output), name=node.name))
            count += 1
    return count


def _clamp_sentinels(graph: Any) -> int:
    """Exporters write INT64_MAX for "to the end" (Slice) and "no limit" (NonMaxSuppression's
    max_output_boxes_per_class); TVM builds those with int32 and refuses the literal. Within
    int32 they mean the same."""
    from onnx import numpy_helper

    tensors = {}
    for g in _graphs(graph):
        tensors.update({t.name: t for t in g.initializer})
        tensors.update({n.output[0]: a.t for n in g.node if n.op_type == "Constant" for a in n.attribute
                        if a.name == "value"})
    count = 0
    for g in _graphs(graph):
        for node in g.node:
            names = node.input[1:3] if node.op_type == "Slice" else \
                node.input[2:3] if node.op_type == "NonMaxSuppression" else []
            for name in names:
                tensor = tensors.get(name)
                if tensor is None:
                    continue
                value = numpy_helper.to_array(tensor)
                if value.dtype == np.int64 and value.size and (np.abs(value) > INT32_MAX).any():
                    tensor.CopyFrom(numpy_helper.from_array(np.clip(value, -INT32_MAX, INT32_MAX), tensor.name))
                    count += 1
    return count


def _graphs(graph: Any) -> Iterator[Any]:
    """The graph and every subgraph (If branches, Loop bodies)."""
    yield graph
    for node in graph.node:
        for a in node.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from _graphs(g)


def _drop_dead_nodes(graph: Any) -> None:
    """Nodes none of whose outputs is read (the Shape a rewrite left behind)."""
    while True:
        used = {name for g in _graphs(graph) for node in g.node for name in node.input}
        used |= {o.name for o in graph.output}
        live = [n for n in graph.node if any(o in used for o in n.output)]
        if len(live) == len(graph.node):
            return
        del graph.node[:]
        graph.node.extend(live)


def _drop_unused_initializers(graph: Any) -> None:
    used = {name for g in _graphs(graph) for node in g.node for name in node.input}
    used |= {o.name for o in graph.output}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)

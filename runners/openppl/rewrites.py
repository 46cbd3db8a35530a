"""What ppl.nn v0.9.2's x86 engine is given in place of what it lacks or mishandles, each an equivalent
of what it replaces (runners/openppl/README.md). Found on torchvision's Faster R-CNN at opset 11: each
one is the next thing that stopped the engine, or made its output wrong, once the ones before it were in place.

Imports `onnx` lazily; the runner calls `for_x86` on the model before ppl.nn loads it.
"""
from typing import Any, Dict, Iterator, List, Optional

# The rewrites, by the name a row's settings give them (part of the runner's cache key).
RECIPROCAL = "Reciprocal->Div"
IDENTITY = "Identity readers->its input"
RESIZE = "Resize half_pixel->pytorch_half_pixel"
EMPTY_SHAPE = "ConstantOfShape(empty shape)->constant"
RANGE = "Range int32->int64"
PAD = "Pad(empty constant_value)->omitted"
REWRITES = [RECIPROCAL, IDENTITY, RESIZE, EMPTY_SHAPE, RANGE, PAD]


def for_x86(model: Any) -> Dict[str, int]:
    """Apply every rewrite to `model` (an onnx ModelProto, in place, subgraphs too). Returns how many
    nodes each changed, those that changed any."""
    from onnx import shape_inference

    types, shapes = {}, {}  # tensor name -> element type, static dims (None where unknown)
    for graph in graphs(shape_inference.infer_shapes(model).graph):
        for value in [*graph.input, *graph.value_info, *graph.output]:
            tensor = value.type.tensor_type
            types[value.name] = tensor.elem_type
            if tensor.HasField("shape"):
                shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        for t in graph.initializer:
            types[t.name], shapes[t.name] = t.data_type, list(t.dims)
        for node in graph.node:
            for a in node.attribute:
                if node.op_type == "Constant" and a.name == "value":
                    types[node.output[0]], shapes[node.output[0]] = a.t.data_type, list(a.t.dims)
    done = {EMPTY_SHAPE: _empty_shapes_folded(model, shapes),  # before IDENTITY: it may add an Identity
            RECIPROCAL: _reciprocals_as_divisions(model, types),
            IDENTITY: _identities_bypassed(model),
            RESIZE: _resize_half_pixel(model),
            RANGE: _int32_ranges(model, types),
            PAD: _pads_without_empty_value(model)}
    if done[EMPTY_SHAPE]:
        _drop_dead_nodes(model.graph)
    return {name: count for name, count in done.items() if count}


def _reciprocals_as_divisions(model: Any, types: Dict[str, int]) -> int:
    """The x86 engine has no Reciprocal (the CUDA engine has): Reciprocal(x) -> Div(1, x), 1 a scalar of
    x's element type, the same IEEE division. The Div keeps the node's name and output. A Reciprocal
    whose input type shape inference cannot tell is left as it is."""
    from onnx import TensorProto, helper

    floats = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}
    names = _names(model)
    count = 0
    for graph in graphs(model.graph):
        for node in graph.node:
            if _op(node) != "Reciprocal" or types.get(node.input[0]) not in floats:
                continue
            one = _fresh(node.output[0] + "_one", names)
            graph.initializer.append(helper.make_tensor(one, types[node.input[0]], [], [1.0]))
            node.op_type = "Div"
            node.input[:] = [one, node.input[0]]
            count += 1
    return count


def _identities_bypassed(model: Any) -> int:
    """ppl.nn's IdentityNodeOptimizer points only the first reader of an Identity's output at its input
    and deletes the output, so a second reader is left on a deleted tensor: Preprocess segfaults
    (torch's export gives a Faster R-CNN with random weights such Identities: its zero biases are one
    initializer, read through one Identity per Conv; rpn.head's by 5 Convs). Readers read the input
    instead; an Identity whose output is a graph output stays, with no reader left."""
    renamed: Dict[str, str] = {}
    for graph in graphs(model.graph):
        renamed.update((n.output[0], n.input[0]) for n in graph.node if _op(n) == "Identity" and n.input[0])
    count = 0
    for graph in graphs(model.graph):
        for node in graph.node:
            for i, name in enumerate(node.input):
                source = name
                while source in renamed:
                    source = renamed[source]
                if source != name:
                    node.input[i] = source
                    count += 1
        kept = {o.name for o in graph.output}
        live = [n for n in graph.node if not (_op(n) == "Identity" and n.output[0] in renamed.keys() - kept)]
        if len(live) != len(graph.node):
            _set_nodes(graph, live)
    return count


def _resize_half_pixel(model: Any) -> int:
    """The x86 engine's linear and cubic Resize kernels take only pytorch_half_pixel coordinates, which
    ONNX defines as half_pixel's wherever a resized side is longer than 1 (Faster R-CNN's transform
    resizes to 800 or more); a 1-pixel side would map to 0, not to the centre."""
    from onnx import helper

    count = 0
    for graph in graphs(model.graph):
        for node in graph.node:
            attrs = {a.name: a for a in node.attribute}
            mode = attrs["mode"].s if "mode" in attrs else b"nearest"
            coordinates = attrs["coordinate_transformation_mode"].s if "coordinate_transformation_mode" in attrs \
                else b"half_pixel"  # the default from opset 11
            if _op(node) != "Resize" or mode not in (b"linear", b"cubic") or coordinates != b"half_pixel":
                continue
            if "coordinate_transformation_mode" in attrs:
                attrs["coordinate_transformation_mode"].s = b"pytorch_half_pixel"
            else:
                node.attribute.append(helper.make_attribute("coordinate_transformation_mode", "pytorch_half_pixel"))
            count += 1
    return count


def _empty_shapes_folded(model: Any, shapes: Dict[str, Optional[List[Optional[int]]]]) -> int:
    """ppl.nn cannot run ConstantOfShape on an empty shape (no buffer to read: "reshape kernel failed:
    not found"); torchvision's anchor generator has 20. Its output is then a scalar of its value: an
    initializer (behind an Identity where the tensor is a graph output)."""
    from onnx import TensorProto, helper

    names = _names(model)
    count = 0
    for graph in graphs(model.graph):
        outputs = {o.name for o in graph.output}
        nodes, before = [], count
        for node in graph.node:
            if _op(node) != "ConstantOfShape" or shapes.get(node.input[0]) != [0]:
                nodes.append(node)
                continue
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            scalar = TensorProto()
            if value is not None:
                scalar.CopyFrom(value)
                del scalar.dims[:]
            else:  # ONNX's default: a float 0
                scalar = helper.make_tensor("", TensorProto.FLOAT, [], [0.0])
            out = node.output[0]
            scalar.name = _fresh(out + "_value", names) if out in outputs else out
            graph.initializer.append(scalar)
            if out in outputs:
                nodes.append(helper.make_node("Identity", [scalar.name], [out], name=node.name))
            count += 1
        if count > before:
            _set_nodes(graph, nodes)
    return count


def _int32_ranges(model: Any, types: Dict[str, int]) -> int:
    """The x86 Range kernel takes int64 and float only (torchvision's anchor generator uses int32):
    the same Range on the inputs cast to int64, its output cast back; every value fits int32."""
    from onnx import TensorProto, helper

    names = _names(model)
    count = 0
    for graph in graphs(model.graph):
        nodes, before = [], count
        for node in graph.node:
            if _op(node) != "Range" or types.get(node.input[0]) != TensorProto.INT32:
                nodes.append(node)
                continue
            wide = [_fresh(x + "_int64", names) for x in node.input]
            ranged = _fresh(node.output[0] + "_int64", names)
            nodes += [helper.make_node("Cast", [x], [w], name=f"{node.name}_input{i}_int64", to=TensorProto.INT64)
                      for i, (x, w) in enumerate(zip(node.input, wide))]
            nodes += [helper.make_node("Range", wide, [ranged], name=node.name + "_int64"),
                      helper.make_node("Cast", [ranged], list(node.output), name=node.name, to=TensorProto.INT32)]
            count += 1
        if count > before:
            _set_nodes(graph, nodes)
    return count


def _pads_without_empty_value(model: Any) -> int:
    """torch's export gives Pad an empty-named constant_value (`Pad(x, pads, "")`: 0 by default). ppl.nn
    makes that input a null tensor, and X86Kernel::CanDoExecute (engines/x86/kernel.cc:41-49), which
    the x86 Pad kernel does not override, skips any kernel with a null input, silently: the output is
    allocated and never written, so Faster R-CNN's padded image is whatever the buffer held. ONNX lets
    trailing optional inputs be left out, which is the same Pad: the kernel then takes its 0 default."""
    count = 0
    for graph in graphs(model.graph):
        for node in graph.node:
            if _op(node) != "Pad" or not node.input or node.input[-1]:
                continue
            while node.input and not node.input[-1]:
                del node.input[-1]
            count += 1
    return count


def _drop_dead_nodes(graph: Any) -> None:
    """Nodes nothing reads and that make no graph output, then initializers nothing reads: a dead Shape
    of a folded scalar makes ppl.nn's Preprocess segfault."""
    while True:
        read = {o.name for o in graph.output} | {i for g in graphs(graph) for n in g.node for i in n.input}
        live = [n for n in graph.node if any(o in read for o in n.output)]
        if len(live) == len(graph.node):
            break
        _set_nodes(graph, live)
    kept = [t for t in graph.initializer if t.name in read]
    if len(kept) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept)


def graphs(graph: Any) -> Iterator[Any]:
    """A graph and every subgraph in its nodes' attributes (If branches, Loop bodies), depth first."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from graphs(sub)


def _op(node: Any) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else ""


def _names(model: Any) -> set:
    return {name for graph in graphs(model.graph) for name in [
        *(o for n in graph.node for o in n.output), *(t.name for t in graph.initializer),
        *(i.name for i in graph.input)]}


def _fresh(name: str, taken: set) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _set_nodes(graph: Any, nodes: List[Any]) -> None:
    del graph.node[:]
    graph.node.extend(nodes)

"""Fixes for apache-tvm 0.27.0.post1's Relax ONNX importer and NMS legalization, wrapped around
TVM's own functions (never a copy of them), and only on that version: each works around a TVM bug
that a later release may fix differently. `apply()` is called before every import.

torchvision's Faster R-CNN loses its shapes in three places on import, then its build allocates
as if NMS could keep 2^31 boxes a class:

  (shared/specialise.py) a Slice to INT64_MAX gets the dim `min(INT32_MAX, n)`, which TVM cannot reduce
                  to `n`: the Slice is made an Identity before import
  symbolic_dims   a tensor whose rank is known but not its dims (an `If` output) gets fresh
                  symbolic dims through `match_cast`, as Relax introduces data-dependent dims
  shape_arith     Add/Sub/Mul of shape values and int constants stays a symbolic ShapeExpr
  nms_rows        NMS's output rows are bounded by the box count, not by batch x classes x
                  max_output_boxes_per_class (INT32_MAX for torchvision's "no limit")
"""
import itertools
from typing import Any, Dict, List

import numpy as np

PINNED = "0.27.0.post1"  # requirements.txt; on any other version none of this is applied
FIXES = ("symbolic_dims", "shape_arith", "nms_rows")
SHAPE_OPS = {"Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b}
_NMS = "relax.vision.all_class_non_max_suppression"


def apply(frontend: Any) -> List[str]:
    """Install the fixes into TVM's ONNX frontend module (once). Returns their names, or [] when
    this TVM is not the pinned one."""
    import tvm

    if tvm.__version__ != PINNED:
        return []
    importer = frontend.ONNXGraphImporter
    if not getattr(importer._convert_operator, "e2e_fixed", False):
        importer._convert_operator = _with_symbolic_dims(importer._convert_operator)
        importer._construct_nodes = _with_shape_arith(importer._construct_nodes)
        # level 11 outranks the default legalization (registered at 10)
        tvm.ir.register_op_attr(_NMS, "FLegalize", _legalize_nms_bounded, level=11)
    return list(FIXES)


# -- symbolic_dims -------------------------------------------------------------------------------
# TVM bug: an ONNX `If` (torchvision's `boxes.numel() == 0` around each NMS) gets the type
# `Tensor(ndim=1)` with no shape, and converters that read shapes (NMS, Add's broadcast) fail or
# crash on it. Relax's own answer to a data-dependent dim is `match_cast` to a fresh variable.
_counter = itertools.count()


def _with_symbolic_dims(convert: Any) -> Any:
    def convert_operator(self: Any, op_name: str, inputs: List[Any], attrs: Dict[str, Any], opset: int) -> Any:
        for i, x in enumerate(inputs):
            cast = _shaped(self.bb, x)
            if cast is not x:
                inputs[i] = cast
                for name, value in list(self._nodes.items()):  # later readers see the dims too
                    if value is x:
                        self._nodes[name] = cast
        return convert(self, op_name, inputs, attrs, opset)

    convert_operator.e2e_fixed = True  # type: ignore[attr-defined]
    return convert_operator


def _shaped(bb: Any, x: Any) -> Any:
    """`x` with a symbolic dim per axis when its rank is known and its shape is not, else `x`."""
    from tvm import relax, tirx

    ty = getattr(x, "ty", None)
    if not isinstance(ty, relax.TensorType) or ty.ndim < 0 or ty.shape is not None:
        return x
    dims = [tirx.Var("e2e_dim{}".format(next(_counter)), "int64") for _ in range(ty.ndim)]
    return bb.match_cast(x, relax.TensorType(dims, ty.dtype))


# -- shape_arith ---------------------------------------------------------------------------------
# TVM bug: `_construct_nodes` refuses a shape value (ShapeExpr) as input to any op outside a
# fixed list ("Node ... cannot handle ShapeExpr inputs."), Add/Sub/Mul included, so torchvision's
# `split(boxes_per_image)` offsets (Add(0, Unsqueeze(Gather(Shape(boxes))))) cannot import once
# the box count is symbolic. Arithmetic on shape values is arithmetic on their PrimExprs.
def _with_shape_arith(construct: Any) -> Any:
    def construct_nodes(self: Any, graph: Any) -> None:
        for node in graph.node:
            value = _shape_arith(self._nodes, node) if node.op_type in SHAPE_OPS else None
            if value is None:
                construct(self, _Nodes([node]))  # TVM's own handling, one node at a time
            else:
                self._nodes[node.output[0]] = value

    return construct_nodes


class _Nodes:
    """What `_construct_nodes` reads of a graph: its nodes."""

    def __init__(self, nodes: List[Any]) -> None:
        self.node = nodes


def _shape_arith(nodes: Dict[str, Any], node: Any) -> Any:
    """Add/Sub/Mul over shape values and int constants as a ShapeExpr, else None."""
    import tvm
    from tvm import relax

    operands, symbolic = [], False
    for name in node.input:
        x = nodes.get(name)
        values = _shape_values(x)
        if values is not None:
            symbolic = True
            operands.append(values)
            continue
        if not isinstance(x, tvm.ir.GenericConst):
            return None
        array = x.value.numpy()
        if array.dtype not in (np.int64, np.int32) or array.ndim > 1:
            return None
        operands.append([int(v) for v in array.reshape(-1)])
    if not symbolic or len(operands) != 2:
        return None
    a, b = operands
    if len(a) != len(b) and 1 not in (len(a), len(b)):
        return None
    n = max(len(a), len(b))
    a, b = (a * n if len(a) == 1 else a), (b * n if len(b) == 1 else b)
    return relax.ShapeExpr([SHAPE_OPS[node.op_type](x, y) for x, y in zip(a, b)])


def _shape_values(x: Any) -> Any:
    from tvm import relax

    if isinstance(x, relax.ShapeExpr):
        return list(x.values)
    ty = getattr(x, "ty", None)
    if isinstance(ty, relax.ShapeType) and ty.values is not None:
        return list(ty.values)
    return None


# -- nms_rows ------------------------------------------------------------------------------------
# TVM bug: the default legalization of all_class_non_max_suppression sizes its output at
# batch x classes x max_output_boxes_per_class rows, and zero-fills them, before trimming to the
# boxes kept. torchvision asks for no limit (INT64_MAX, INT32_MAX once clamped): 2^31 rows a
# class, std::bad_alloc. No class keeps more boxes than there are, so `boxes` rows a class are
# enough. Not min(limit, boxes): Relax's memory planner allocates a symbolic size at its upper
# bound, which would be the limit again. With a symbolic box count TOPI's collect step zero-fills
# batch x classes x 10 rows whatever the output's size, so there are at least that many (the
# trim drops them); the limit goes to TOPI as an IntImm, which it applies in the NMS loop.
def _legalize_nms_bounded(bb: Any, call: Any) -> Any:
    import tvm
    from tvm import relax, te, tirx, topi

    boxes, scores, limit, iou, score = call.args
    if (call.attrs.output_format != "onnx" or not isinstance(limit, tvm.ir.GenericConst)
            or scores.ty.shape is None or len(scores.ty.shape.values) != 3):
        return _default_legalization(bb, call)
    batch, classes, num_boxes = scores.ty.shape.values
    requested = min(int(limit.value.numpy().reshape(-1)[0]), 2 ** 31 - 1)
    if isinstance(num_boxes, tirx.IntImm):  # TOPI sizes its output itself from a Python int
        bound, shape = min(requested, int(num_boxes)), None  # type: Any, Any
    else:
        bound = tirx.IntImm("int32", requested)
        shape = (batch * classes * tirx.max(num_boxes, tirx.IntImm("int64", 10)), 3)

    def nms(b: Any, s: Any, i: Any, t: Any) -> Any:
        return topi.vision.all_class_non_max_suppression(b, s, bound, i, t, "onnx", output_shape=shape)

    result = bb.call_te(nms, boxes, scores, iou, score, primfunc_name_hint="all_class_non_max_suppression")
    indices = bb.emit(relax.TupleGetItem(result, 0))
    count = bb.emit(relax.TupleGetItem(result, 1))
    # keep the first `count` rows, as the default legalization does after TOPI
    end = bb.call_te(lambda c: te.compute((2,), lambda k: tirx.if_then_else(
        k == 0, tirx.Cast("int64", c[0]), tirx.const(3, "int64")), name="end"), count)
    trimmed = bb.emit(relax.op.dynamic_strided_slice(
        indices, relax.const([0, 0], "int64"), end, relax.const([1, 1], "int64")))
    return relax.Tuple([trimmed, count])


def _default_legalization(bb: Any, call: Any) -> Any:
    from tvm.relax.transform.legalize_ops import vision

    return vision._all_class_non_max_suppression(bb, call)

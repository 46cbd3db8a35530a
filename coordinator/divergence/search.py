"""Where an engine's outputs go wrong: its intermediate tensors against a reference executor's,
node by node in topological order, with the row's tolerances. Pure functions over saved
tensors; running the engines is `explain.py`'s job.

The first divergent node is the first node (in topological order) with an output beyond the
tolerance whose inputs are all within it: its own computation is where the error enters, as
Polygraphy's layer-wise comparison shows it by hand. Each tensor's error is also given as a
figure independent of its scale (the relative L2 error), from which the drift each node *adds*
to its inputs' is summed per operator type: which kinds of layer lose the most at fp16/int8.
"""
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from shared.records import Record
from shared.tensors import Sample

from coordinator.divergence.onnx_graph import Graph, Node
from coordinator.report.parity import compare_tensor

CHAIN_SHOWN = 50  # nodes of the chain kept in the report; its length is always given
# Operators that pick elements (indices, boxes): inputs within tolerance can still pick others
# (a tie, a score at a threshold), so their divergence may be their inputs' drift made visible.
SELECTING = {"TopK", "NonMaxSuppression", "NonZero", "ArgMax", "ArgMin", "RoiAlign", "GatherND", "Less",
             "Greater", "Equal", "Where", "Unique"}


@dataclass
class TensorError(Record):
    """One node's output against the reference's (the worst of its outputs)."""

    node: str
    op: str
    depth: int
    tensor: str
    passed: bool
    max_abs: Optional[float] = None
    max_rel: Optional[float] = None
    ratio: Optional[float] = None  # max |out - ref| / (atol + rtol |ref|): above 1 is beyond the tolerance
    rel_error: Optional[float] = None  # ||out - ref|| / ||ref||
    note: str = ""  # why it cannot be compared as numbers: a shape, non-finite values


@dataclass
class OpDrift(Record):
    """The error the nodes of one operator type add: which kinds of layer lose the most."""

    op: str
    nodes: int
    added: float  # the sum over its nodes of (relative error out - the worst of its inputs'), where positive
    worst: float  # the largest relative error of any of its outputs
    beyond: int  # its nodes with an output beyond the tolerance


@dataclass
class DepthError(Record):
    depth: int
    ratio: Optional[float]  # the worst tolerance ratio at this depth (None: not comparable as numbers)
    node: str


@dataclass
class Divergence(Record):
    """The localisation of one row: what `e2e explain` writes into it."""

    status: str  # found, agrees (every exposed tensor within tolerance), cannot (engine cannot expose), failed
    engine: str
    precision: str
    atol: float
    rtol: float
    method: str = ""  # all tensors in one run, or a bisection over the graph
    sample: int = 0  # the test input compared
    reference: str = ""  # the reference executor, and its own check against PyTorch
    first: Optional[TensorError] = None
    attributes: Dict[str, str] = field(default_factory=dict)  # the first node's
    inputs: List[TensorError] = field(default_factory=list)  # the first node's inputs, all within tolerance
    chain: List[TensorError] = field(default_factory=list)  # divergent nodes fed by the first, in order
    chain_length: int = 0
    by_depth: List[DepthError] = field(default_factory=list)
    drift: List[OpDrift] = field(default_factory=list)  # most added first
    compared: int = 0  # tensors compared
    missing: List[str] = field(default_factory=list)  # exposed tensors the engine did not return
    runs: int = 0  # engine runs (and as many reference runs) the search took
    note: str = ""

    def summary(self) -> str:
        """One line: the first divergent node and its figures, or why there is none."""
        if self.status != "found" or self.first is None:
            return self.note
        f = self.first
        figures = f.note or (f"max abs {f.max_abs:.3g}, {f.ratio:.3g}x the tolerance" if f.ratio is not None
                             else f"max abs {f.max_abs:.3g}")
        after = f", then {self.chain_length} divergent node(s) after it" if self.chain_length else ""
        return f"first divergent node {f.node} ({f.op}): {f.tensor}: {figures}{after}"


def tensor_error(node: Node, tensor: str, ref: np.ndarray, out: np.ndarray, atol: float, rtol: float) -> TensorError:
    p = compare_tensor(tensor, ref, out, atol, rtol)
    error = TensorError(node.name, node.op, node.depth, tensor, p.passed, _finite(p.max_abs), _finite(p.max_rel),
                        note=p.note)
    if p.max_abs is not None and ref.size:
        r, o = np.asarray(ref, np.float64), np.asarray(out, np.float64)
        diff = np.abs(o - r)
        error.ratio = _finite((diff / (atol + rtol * np.abs(r))).max())
        scale = float(np.linalg.norm(r))
        error.rel_error = _finite(np.linalg.norm(o - r) / scale if scale else np.linalg.norm(o - r))
    elif p.max_abs is not None:
        error.ratio = error.rel_error = 0.0
    return error


def _finite(value: Optional[float]) -> Optional[float]:
    """JSON has no inf or NaN: such a figure is unknown (a reference with non-finite values)."""
    return float(value) if value is not None and np.isfinite(value) else None


@dataclass
class Comparison:
    """Every exposed tensor of one run compared: what the search decides with."""

    errors: Dict[str, TensorError]  # tensor -> its error
    missing: List[str]

    def diverges(self) -> bool:
        return any(not e.passed for e in self.errors.values())


def compare_run(graph: Graph, tensors: List[str], reference: Sample, outputs: Sample,
                atol: float, rtol: float) -> Comparison:
    errors, missing = {}, []
    for t in tensors:
        if t not in reference:  # the reference could not expose it either: nothing to say
            continue
        if t not in outputs:  # not exposed by the engine: unknown, never counted as wrong
            missing.append(t)
            continue
        errors[t] = tensor_error(graph.producer[t], t, reference[t], outputs[t], atol, rtol)
    return Comparison(errors, missing)


def localise(graph: Graph, comparison: Comparison, engine: str, precision: str, atol: float,
             rtol: float) -> Divergence:
    """The first divergent node of a comparison, the chain after it, error by depth, drift by op.

    A divergent tensor that every node reading it brings back within tolerance is *masked*, not
    a divergence: an int8 graph quantizes a Conv followed by a Relu as one, so the Conv's own
    output is clipped at zero where the Relu would have clipped it. It is said in the note."""
    errors = comparison.errors
    masked = _masked(graph, errors)
    kept = {t: e for t, e in errors.items() if t not in masked}
    worst = {n.name: _worst([kept[t] for t in n.outputs if t in kept]) for n in graph.nodes}
    found = Divergence("agrees", engine, precision, atol, rtol, compared=len(errors),
                       missing=comparison.missing[:CHAIN_SHOWN])
    found.by_depth = _by_depth(graph, worst)
    found.drift = _drift(graph, kept, masked)
    notes = [f"{len(masked)} divergent tensor(s) that the nodes reading them bring back within tolerance, not counted: "
             f"{', '.join(masked[:5])}{' ...' if len(masked) > 5 else ''}"] if masked else []
    first = next((n for n in graph.nodes if worst[n.name] and not worst[n.name].passed
                  and all(errors[t].passed for t in n.inputs if t in kept)), None)
    if first is None:
        found.note = "; ".join([f"all {len(kept)} exposed tensors are within atol {atol:g} + rtol {rtol:g} of the "
                                "reference" + (f"; {len(comparison.missing)} the engine did not return"
                                               if comparison.missing else ""), *notes])
        return found
    found.status, found.first = "found", worst[first.name]
    found.attributes = dict(first.attributes)
    found.inputs = [errors[t] for t in dict.fromkeys(first.inputs) if t in errors]
    chain = [worst[n.name] for n in _downstream(graph, first) if worst[n.name] and not worst[n.name].passed]
    found.chain, found.chain_length = chain[:CHAIN_SHOWN], len(chain)
    unknown = [t for t in first.inputs if t in graph.producer and t not in errors]
    if unknown:
        notes.insert(0, f"input(s) {', '.join(unknown)} could not be compared")
    if first.op in SELECTING and any((e.max_abs or 0) > 0 for e in found.inputs):
        notes.insert(0, f"{first.op} selects elements: its inputs are within tolerance but not equal, and a tie or "
                        "a value at a threshold picks differently; the drift of its inputs may be the cause")
    found.note = "; ".join(notes)
    return found


def _masked(graph: Graph, errors: Dict[str, TensorError]) -> List[str]:
    """Divergent tensors, not graph outputs, whose every reader is compared and within tolerance."""
    readers = graph.consumers()
    masked = []
    for t, e in errors.items():
        if e.passed or t in graph.outputs or not readers.get(t):
            continue
        outs = [errors.get(o) for n in readers[t] for o in n.outputs if o]
        if outs and all(o is not None and o.passed for o in outs):
            masked.append(t)
    return masked


def _worst(errors: List[TensorError]) -> Optional[TensorError]:
    if not errors:
        return None
    return max(errors, key=lambda e: (not e.passed, e.note != "", e.ratio or 0.0))


def _downstream(graph: Graph, start: Node) -> List[Node]:
    """The nodes that read, directly or not, what `start` computes, in topological order."""
    tainted = set(t for t in start.outputs if t)
    found = []
    for n in graph.nodes[start.index + 1:]:
        if tainted.intersection(n.inputs):
            found.append(n)
            tainted.update(t for t in n.outputs if t)
    return found


def _by_depth(graph: Graph, worst: Dict[str, Optional[TensorError]]) -> List[DepthError]:
    deepest: Dict[int, DepthError] = {}
    for n in graph.nodes:
        e = worst[n.name]
        if e is None:
            continue
        ratio = None if e.note else e.ratio
        have = deepest.get(n.depth)
        if have is None or have.ratio is not None and (ratio is None or ratio > have.ratio):
            deepest[n.depth] = DepthError(n.depth, ratio, n.name)
    return [deepest[d] for d in sorted(deepest)]


def _drift(graph: Graph, errors: Dict[str, TensorError], masked: List[str]) -> List[OpDrift]:
    """Per operator type, the relative error its nodes add to the worst of their inputs'. A
    masked tensor counts with the error of what its readers make of it: an int8 Conv+Relu
    loses at the Conv, and that is where its error is put."""
    readers = graph.consumers()
    error = {t: e.rel_error for t, e in errors.items() if e.rel_error is not None}
    for t in masked:
        error[t] = max((error[o] for n in readers[t] for o in n.outputs if o in error), default=0.0)
    added: Dict[str, float] = defaultdict(float)
    worst: Dict[str, float] = defaultdict(float)
    counts: Dict[str, Tuple[int, int]] = defaultdict(lambda: (0, 0))
    for n in graph.nodes:
        outs = [error[t] for t in n.outputs if t in error]
        if not outs:
            continue
        added[n.op] += max(0.0, max(outs) - max((error[t] for t in n.inputs if t in error), default=0.0))
        worst[n.op] = max(worst[n.op], max(outs))
        nodes, beyond = counts[n.op]
        counts[n.op] = (nodes + 1, beyond + any(t in errors and not errors[t].passed for t in n.outputs))
    table = [OpDrift(op, counts[op][0], added[op], worst[op], counts[op][1]) for op in counts]
    return sorted(table, key=lambda d: (-d.added, -d.worst, d.op))

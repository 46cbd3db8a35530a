"""Localise where an engine's outputs diverge: run the engine and the reference executor (ONNX Runtime on the
CPU at fp32, on the same ONNX) with intermediate tensors exposed as graph outputs, through the
normal launchers and runners, and name the first node that goes wrong (`divergence.py`).

All tensors are exposed in one run when their estimated size fits the budget. Otherwise, or
when exposing them all changes the engine enough that nothing diverges any more (a marked
tensor cannot be fused away, so the bug of a fusion hides), the graph is bisected as
Polygraphy's `debug reduce` does, but by marking instead of cutting: the tensors that cross a
cut of the topological order carry all that the rest of the graph learns from before it, so
"some tensor across the cut diverges" is monotone along the order, and a binary search finds
the window where the error enters; that window is then exposed whole.
"""
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional

from shared.result import RunResult
from shared.spec import RunSpec
from shared.tensors import Sample, load_samples, save_samples
from shared.errors import one_line

from coordinator.divergence.search import Comparison, Divergence, compare_run, localise
from coordinator.engines import Engine
from coordinator.launchers import Launcher
from coordinator.divergence.onnx_graph import Graph, marked_copy

REFERENCE_EXECUTOR = "ort"  # ONNX Runtime, CPU, fp32: Polygraphy's reference too
BUDGET_MB = 1024  # exposed tensors of one sample, above which the graph is bisected
WINDOW = 24  # nodes exposed whole at the end of a bisection


class RunFailed(Exception):
    """One side's marked run did not end ok."""


@dataclass
class Side:
    """How one side runs: its engine and launcher, the spec each of its runs starts from
    (`model_path` and `inputs_path` are set per run) and the ONNX model it runs."""

    engine: Engine
    launcher: Launcher
    spec: RunSpec
    model: Any  # onnx.ModelProto


def reference_side(launcher: Launcher, engine: Engine, like: RunSpec, model: Any) -> Side:
    """The reference executor, as many threads and as much memory as the engine gets."""
    spec = RunSpec(engine=engine.id, model_path="", inputs_path="", device="cpu", precision="fp32",
                   threads=like.threads, memory_limit_mb=like.memory_limit_mb, cache_dir=like.cache_dir)
    return Side(engine, launcher, spec, model)


class Search:
    """The runs of one localisation; each run exposes a set of tensors on both sides."""

    def __init__(self, graph: Graph, engine: Side, reference: Side, sample: Sample, work_dir: Path,
                 atol: float, rtol: float, timeout: float, log: Callable[[str], None] = print) -> None:
        self.graph, self.engine, self.reference, self.work_dir = graph, engine, reference, work_dir
        self.atol, self.rtol, self.timeout, self.log = atol, rtol, timeout, log
        self.runs = 0
        self.reference_outputs: Optional[Sample] = None  # the graph outputs, from the first reference run
        work_dir.mkdir(parents=True, exist_ok=True)
        self.inputs = work_dir / "inputs.npz"
        save_samples(str(self.inputs), [sample])

    def compare(self, tensors: List[str]) -> Comparison:
        self.runs += 1
        folder = self.work_dir / f"run{self.runs}"
        reference = self._run(self.reference, tensors, folder / "reference", "reference")
        self.reference_outputs = self.reference_outputs or {k: reference[k] for k in self.graph.outputs if k in reference}
        outputs = self._run(self.engine, tensors, folder / "engine", "engine")
        return compare_run(self.graph, tensors, reference, outputs, self.atol, self.rtol)

    def _run(self, side: Side, tensors: List[str], io_dir: Path, role: str) -> Sample:
        io_dir.mkdir(parents=True, exist_ok=True)
        model = marked_copy(side.model, tensors, io_dir / "marked.onnx", self.graph.types)
        extra = [p.name for p in io_dir.glob("marked.onnx.data")]
        spec = side.spec.replace(model_path=str(model), inputs_path=str(self.inputs), model_sha256="",
                                 model_files=extra, warmup=0, warmup_time_s=0.0, iterations=1, min_time_s=0.0,
                                 save_outputs=True)
        self.log(f"  run {self.runs}, {role} ({side.engine.id} {side.spec.precision}): {len(tensors)} tensor(s) exposed")
        try:
            result = side.launcher.run(side.engine, spec, io_dir, self.timeout)
        finally:  # a marked copy of a detector is as large as the model: keep only the logs
            for path in [model, *(io_dir / name for name in extra)]:
                path.unlink(missing_ok=True)
        if result.status != "ok" or not result.outputs_file:
            raise RunFailed(_ended(side.engine, result, io_dir))
        return load_samples(str(io_dir / result.outputs_file))[0]


def search(s: Search, engine: str, precision: str, budget_mb: float = BUDGET_MB, window: int = WINDOW) -> Divergence:
    """All tensors at once when they fit the budget; else, or when that finds nothing, bisect."""
    g = s.graph
    everything = g.exposable
    size_mb = g.estimated_bytes(everything, load_samples(str(s.inputs))[0]) / 2 ** 20
    if size_mb > budget_mb:
        found = bisect(s, engine, precision, window)
        why = f"the {len(everything)} tensors would take about {size_mb:.0f} MB (budget {budget_mb:.0f} MB): bisected"
        found.note = "; ".join(n for n in (why, found.note) if n)
        return found
    try:
        whole: Optional[Divergence] = localise(g, s.compare(everything), engine, precision, s.atol, s.rtol)
        why = ("with every tensor exposed none diverges, but with none exposed the outputs do: exposing a tensor "
               "keeps the engine from fusing its producer away, so the error is in a fusion; bisected")
    except RunFailed as e:
        whole, why = None, f"the run with every tensor exposed failed ({e}): bisected"
    if whole is not None:
        whole.method, whole.runs = f"all {len(everything)} tensors exposed in one run", s.runs
        if whole.status == "found":
            return whole
    # Nothing diverges with everything exposed: do the outputs diverge with nothing exposed?
    found = bisect(s, engine, precision, window)
    if found.status == "found" or whole is None:
        found.note = "; ".join(n for n in (why, found.note) if n)
        return found
    whole.runs = s.runs
    whole.note += "; the graph's outputs alone (nothing exposed) are within tolerance too"
    return whole


def bisect(s: Search, engine: str, precision: str, window: int = WINDOW) -> Divergence:
    """Binary search over the topological order for the window where the error enters."""
    g = s.graph
    lo, hi = 0, len(g.nodes)
    final = s.compare(g.cut(hi))
    if not final.errors:
        return Divergence("cannot", engine, precision, s.atol, s.rtol, method="bisection", runs=s.runs,
                          note="the engine returned none of the graph's outputs")
    if not final.diverges():
        found = localise(g, final, engine, precision, s.atol, s.rtol)
        found.method, found.runs = "bisection", s.runs
        found.note = "the graph's outputs are within tolerance of the reference on this input"
        return found
    while hi - lo > window:
        mid = (lo + hi) // 2
        crossing = s.compare(g.cut(mid))
        if crossing.diverges():
            hi = mid
        else:
            lo = mid
    nodes = g.nodes[lo:hi]
    tensors = list(dict.fromkeys([t for n in nodes for t in n.inputs if t in g.exposable_set] +
                                 [t for n in nodes for t in n.outputs if t in g.exposable_set]))
    found = localise(g, s.compare(tensors), engine, precision, s.atol, s.rtol)
    found.method = f"bisection: {s.runs} runs, then nodes {lo}-{hi - 1} of {len(g.nodes)} exposed"
    found.runs = s.runs
    if found.status == "found":
        found.note = "; ".join(n for n in (found.note, "the chain is the window's; the graph's outputs diverge too") if n)
    return found


def cannot(engine: Engine, precision: str, atol: float, rtol: float) -> Optional[Divergence]:
    """A row whose engine cannot expose its tensors, saying why; None when it can."""
    if engine.consumes == "torch":
        return Divergence("cannot", engine.id, precision, atol, rtol, note=(
            f"{engine.name} takes the PyTorch model, not the ONNX export: its intermediate tensors cannot be "
            "exposed as graph outputs"))
    return None


def _ended(engine: Engine, result: RunResult, io_dir: Path) -> str:
    where = f" at {result.stage}" if result.stage else ""
    return f"{engine.id} ended {result.status}{where}: {one_line(result.reason or '')} (log: {io_dir}/runner.log)"


def clean(work_dir: Path) -> None:
    """Remove a previous localisation's files (its logs are replaced by the new one's)."""
    shutil.rmtree(work_dir, ignore_errors=True)

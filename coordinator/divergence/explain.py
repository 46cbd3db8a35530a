"""`e2e explain RUN_DIR ENGINE` and `e2e bench --explain`: localise a finished row's divergence
(`localise.py`) with the row's own model, settings and tolerances, and write it into the row."""
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np

from shared.spec import RunSpec
from shared.tensors import load_samples

from coordinator import engines as engine_registry, tasks
from coordinator.model import export, zoo as models, testdata
from coordinator.config import BenchConfig
from coordinator.divergence.search import Divergence
from coordinator.errors import UsageError
from coordinator.launchers import EnvironmentFailed, LaunchSettings, Launcher, choose, create_all
from coordinator.divergence.localise import BUDGET_MB, REFERENCE_EXECUTOR, RunFailed, Search, Side, cannot, clean, reference_side, search
from coordinator.divergence.onnx_graph import Graph
from coordinator.report.parity import TOLERANCES, tolerance_precision
from coordinator.report.document import Report, Row, load_report
from coordinator.report.row_text import parity_failure


def explain_run(run_dir: Path, engine_id: str, precision: Optional[str] = None, sample: Optional[int] = None,
                budget_mb: float = BUDGET_MB, log: Callable[[str], None] = print) -> Row:
    """Localise one row of a finished run, write it into report.json and remake the views."""
    from coordinator.report.views import write_report

    report = load_report(run_dir)
    if report.setup.config is None:
        raise UsageError(f"{run_dir}: report.json has no saved settings (made by an older e2e): cannot explain")
    cfg = report.setup.config.at(run_dir)
    rows = [r for r in report.results if r.engine == engine_id and precision in (None, r.precision_requested)]
    if not rows:
        have = ", ".join(f"{r.engine} {r.precision_requested}" for r in report.results) or "none"
        raise UsageError(f"{run_dir}: no row of {engine_id}{' at ' + precision if precision else ''}; rows: {have}")
    if len(rows) > 1:
        raise UsageError(f"{run_dir}: {engine_id} has rows at {', '.join(r.precision_requested for r in rows)}: "
                         "choose one with --precision")
    row = rows[0]
    launchers = create_all(LaunchSettings(cfg.execution.cache_dir, cfg.execution.memory_limit, log))
    row.divergence = explain_row(report, run_dir, row, cfg, launchers, log, sample=sample, budget_mb=budget_mb)
    write_report(report, run_dir)
    return row


def explain_row(report: Report, run_dir: Path, row: Row, cfg: BenchConfig, launchers: Mapping[str, Launcher],
                log: Callable[[str], None], model_path: Optional[Path] = None, sample: Optional[int] = None,
                budget_mb: float = BUDGET_MB) -> Divergence:
    """The row's divergence; a localisation that cannot run is a Divergence saying why."""
    engine = engine_registry.discover().get(row.engine)
    if engine is None:
        raise UsageError(f"the row's engine {row.engine!r} has no runner folder here")
    precision = tolerance_precision(row.precision or row.precision_requested, row.precision_requested)
    if precision not in TOLERANCES:
        raise UsageError(f"{row.engine}: precision {precision!r} has no tolerance")
    atol, rtol = TOLERANCES[precision]
    refused = cannot(engine, row.precision_label(), atol, rtol)
    if refused or row.status != "ok":
        return refused or Divergence("cannot", engine.id, row.precision_label(), atol, rtol,
                                     note=f"the row ended {row.status}: there are no outputs to compare")
    samples = load_samples(report.data.inputs_path)
    if sample is None:
        sample = _worst_sample(run_dir, row, testdata.reference_file(Path(report.data.inputs_path).parent,
                                                                      cfg.execution.device or "cpu"), atol, rtol)
    if not 0 <= sample < len(samples):
        raise UsageError(f"--sample {sample}: the run has {len(samples)} test input(s), 0-{len(samples) - 1}")
    device = cfg.execution.device or "cpu"
    sides = []
    for wanted, on in ((engine, device), (engine_registry.discover()[REFERENCE_EXECUTOR], "cpu")):
        launcher, unavailable = choose(wanted, cfg.execution.launcher, on, launchers)
        if unavailable:
            return Divergence("cannot", engine.id, row.precision_label(), atol, rtol,
                              note=f"{wanted.id} cannot run here: {unavailable}")
        try:
            launcher.prepare(wanted)
        except EnvironmentFailed as e:
            return Divergence("failed", engine.id, row.precision_label(), atol, rtol, note=f"{wanted.id}: {e}")
        sides.append(launcher)
    import onnx

    model = onnx.load(str(model_path or _model_path(report, cfg, engine, log)))
    spec = RunSpec(engine=engine.id, model_path="", inputs_path="", device=device, precision=row.precision_requested,
                   threads=cfg.execution.threads or 1, cache_dir=str(cfg.execution.cache_dir / "engines" / engine.id),
                   memory_limit_mb=cfg.execution.memory_limit, engine_options=cfg.execution.options_for(engine.id),
                   # the row's quantization calibrated on these, not on the one input compared here
                   calibration_path=_calibration(report) if row.precision_requested == "int8" else None)
    work = run_dir / "logs" / f"explain-{engine.id}-{row.precision_requested}"
    clean(work)
    s = Search(Graph(model), Side(engine, sides[0], spec, model),
               reference_side(sides[1], engine_registry.discover()[REFERENCE_EXECUTOR], spec, model),
               samples[sample], work, atol, rtol, cfg.execution.timeout, log)
    try:
        found = search(s, engine.id, row.precision_label(), budget_mb)
    except RunFailed as e:
        found = Divergence("failed", engine.id, row.precision_label(), atol, rtol, runs=s.runs, note=str(e))
    found.sample = sample
    found.reference = _reference_check(report, s.reference_outputs, sample, device)
    return found


def _worst_sample(run_dir: Path, row: Row, reference: Path, atol: float, rtol: float) -> int:
    """The test input on which the row's outputs are furthest from PyTorch's (an output of
    another shape, as a detector's, counts as furthest); 0 when they cannot be compared."""
    outputs = run_dir / Path(row.log).parent / (row.outputs_file or "") if row.log else None
    if outputs is None or not outputs.is_file() or not reference.is_file():
        return 0
    scores = []
    for ref, out in zip(load_samples(str(reference)), load_samples(str(outputs))):
        worst = 0.0
        for name, r in ref.items():
            o = out.get(name)
            if o is None or o.shape != r.shape:
                worst = float("inf")
            elif r.size:
                diff = np.abs(o.astype(np.float64) - r)
                worst = max(worst, float(np.nan_to_num((diff / (atol + rtol * np.abs(r))).max(), nan=np.inf)))
        scores.append(worst)
    return int(np.argmax(scores)) if scores else 0


def _model_path(report: Report, cfg: BenchConfig, engine: Any, log: Callable[[str], None]) -> Path:
    """The ONNX file the row ran: the run's export, or the engine's own at the opset it loads
    (from the export cache, as the bench made it)."""
    opset = engine.opset_for(cfg.model.opset)
    if opset == report.model.opset or cfg.model.name.endswith(".onnx"):
        return Path(report.model.onnx_file)
    model = cfg.model
    return export.prepare(models.resolve(model.name, cfg.data.input_size), model.weights, model.seed, opset,
                          cfg.execution.cache_dir, log=log).onnx_path


def _calibration(report: Report) -> str:
    calibration = report.data.calibration
    return calibration.inputs_path if calibration else report.data.inputs_path


def _reference_check(report: Report, outputs: Optional[Any], sample: int, device: str) -> str:
    """The reference executor, and how its outputs on this input compare with PyTorch's."""
    what = "ONNX Runtime, CPU, fp32, on the same ONNX"
    path = testdata.reference_file(Path(report.data.inputs_path).parent, device)
    if outputs is None:
        return what
    if not path.is_file():
        return f"{what} (not checked against PyTorch: no PyTorch outputs for these inputs)"
    family = tasks.find(report.task()) or tasks.get(tasks.FALLBACK)
    p = family.compare([load_samples(str(path))[sample]], [outputs], "fp32")
    return f"{what}; it {'matches' if p.passed else 'DIFFERS from'} PyTorch on this input" + (
        "" if p.passed else f" ({parity_failure(p)}): the divergence is from ONNX Runtime, not from PyTorch")

"""What every row of a run shares (the export, the inputs, the reference, the launchers), and how
one row is launched, run and made into a report row. Every schedule goes through `launch` and
`finish`: interleaved rounds (resident.py) between them, one whole run (`run`) otherwise."""
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from shared.result import NOT_READ_BACK, RunResult
from shared.spec import PRECISIONS, RunSpec
from shared.tensors import load_samples
from shared.errors import one_line

from coordinator.config import BenchConfig
from coordinator.divergence.explain import explain_row
from coordinator.divergence.search import Divergence
from coordinator.engines import Engine
from coordinator.launchers import EnvironmentFailed, Launcher, choose
from coordinator.launchers.process import start_overhead
from coordinator.launchers.ray.cluster import Node
from coordinator.report import faults
from coordinator.report.document import Report, Row
from coordinator.run import host_phases, skips
from coordinator.run.exports import Exports
from coordinator.run.fleet import FleetRun
from coordinator.run.launch import Launch, launcher_failed
from coordinator.run.points import Point
from coordinator.run.prepare import Prepared
from coordinator.run.reference import Reference


class Context:
    def __init__(self, cfg: BenchConfig, prepared: Prepared, report: Report, log: Any, phases: Dict[str, float],
                 launchers: Dict[str, Launcher], console_is_terminal: bool, fleet: Optional[FleetRun]) -> None:
        assert cfg.reporting.out is not None
        self.cfg, self.run_dir, self.prepared, self.report, self.log = cfg, cfg.reporting.out, prepared, report, log
        self.artifact, self.data = prepared.artifact, prepared.data
        self.phases = phases  # seconds spent making environments and the reference, for the report
        self.launchers = launchers
        self.console_is_terminal = console_is_terminal
        self.fleet = fleet  # --hosts: the nodes and their launchers
        self.exports = Exports(cfg, prepared, log, phases)
        self.reference = Reference(self)
        self.stopped = False  # Ctrl-C: no more rows (the fleet's threads take none)
        self.lock = threading.Lock()  # the report and the queues, which fleet threads share

    def stop(self) -> None:
        self.stopped = True
        if self.fleet is not None:
            self.fleet.stop()

    def io_dir(self, engine: Engine, precision: str, point: Point = Point(), variant: str = "",
               machine: str = "") -> Path:
        return self.run_dir / "logs" / (f"{engine.id}-{precision}{point.folder()}{'-' + variant if variant else ''}"
                                        f"{'@' + machine if machine else ''}")

    def launcher_for(self, engine: Engine, node: Optional[Node]) -> Tuple[Optional[Launcher], Optional[str]]:
        """The launcher for this engine and, if it cannot run the engine, why (the policy of
        coordinator/launchers/registry.py). On a fleet node: the node's launcher, which applies
        that policy there."""
        device = self.cfg.execution.device or "cpu"
        if node is not None:
            launcher = self.fleet.launcher(node)
            return launcher, launcher.unavailable(engine, device)
        return choose(engine, self.cfg.execution.launcher, device, self.launchers)

    def spec_for(self, engine: Engine, precision: str, point: Point, options: Optional[Dict[str, Any]] = None,
                 max_time: Optional[float] = None) -> RunSpec:
        """The runner's spec: `options` instead of the -o ones, `max_time` instead of --max-time."""
        run, timing = self.cfg.execution, self.cfg.timing
        model_path, model_info, _ = self.exports.model_for(engine)
        return RunSpec(
            engine=engine.id, model_path=str(model_path), inputs_path=str(self.data.inputs_path),
            model_sha256=model_info.sha256 if model_info else "",
            model_files=list(model_info.external_data) if model_info else [],
            device=run.device or "cpu", precision=precision, warmup=timing.warmup, warmup_time_s=timing.warmup_time,
            iterations=None if max_time else timing.iterations, min_time_s=0.0 if max_time else timing.min_time or 0.0,
            target_ci=timing.target_ci, max_time_s=max_time or timing.max_time,
            repeats=timing.repeats, threads=run.threads or 1, scenario=point.scenario, batch_size=point.batch,
            concurrency=point.in_flight if point.concurrent else 1,
            cache_dir=str(run.cache_dir / "engines" / engine.id),
            calibration_path=self.prepared.calibration_path if precision == "int8" else None,
            memory_limit_mb=run.memory_limit, fault=faults.injected(engine.id),
            engine_options=run.options_for(engine.id) if options is None else options)

    def launch(self, engine: Engine, precision: str, point: Point = Point(), options: Optional[Dict[str, Any]] = None,
               variant: str = "", max_time: Optional[float] = None, node: Optional[Node] = None) -> Union[Launch, Row]:
        """What a row's runner is started with, or the row already when nothing is to be launched
        (skipped, no environment, no export at the engine's opset)."""
        launcher, unavailable = self.launcher_for(engine, node)
        io_dir = self.io_dir(engine, precision, point, variant, machine=node.kind if node else "")
        reason = skips.reason(self, engine, precision, point) or unavailable
        if reason:  # nothing was launched
            return Row.make(engine, "", precision, RunResult(engine.id, "skipped", reason=reason), point=point)
        try:
            model_path, _, row_input = self.exports.model_for(engine)
            spec = self.spec_for(engine, precision, point, options, max_time)
        except Exception as e:  # an export at this engine's opset failed: its row, not the bench
            return Row.make(engine, "", precision, RunResult.from_error(engine.id, e, stage="setup"), point=point)
        t = time.perf_counter()
        try:
            launcher.prepare(engine)
        except EnvironmentFailed as e:
            return Row.make(engine, launcher.name, precision, RunResult.from_error(engine.id, e, stage="setup"),
                            point=point)
        finally:
            self.phases["environments_s"] += time.perf_counter() - t
        return Launch(engine, precision, point, launcher, spec, io_dir, model_path, row_input)

    def run(self, engine: Engine, precision: str, point: Point = Point(), options: Optional[Dict[str, Any]] = None,
            variant: str = "", max_time: Optional[float] = None, node: Optional[Node] = None) -> Row:
        """One row run whole, on its own (the sequential schedule, a --tune search)."""
        launch = self.launch(engine, precision, point, options, variant, max_time, node)
        if isinstance(launch, Row):
            return self.on_node(launch, node)
        started = time.time()
        try:
            result = launch.launcher.run(engine, launch.spec, launch.io_dir, self.cfg.execution.timeout)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # the launcher itself broke (a Docker API error, a GPU that is not there): a row
            result = launcher_failed(engine, launch.launcher, e)
        return self.on_node(self.finish(launch, result, started, node), node)

    def finish(self, launch: Launch, result: RunResult, started: float, node: Optional[Node] = None) -> Row:
        """The row of a runner's result: parity, host phases, divergence, task accuracy."""
        cfg, engine, precision, point, io_dir = self.cfg, launch.engine, launch.precision, launch.point, launch.io_dir
        if result.precision and result.precision not in (*PRECISIONS, NOT_READ_BACK):  # detail goes in settings
            result = RunResult(engine.id, "failed", stage="run", settings=result.settings, reason=(
                f"the runner reported precision {result.precision!r}, which is not one of {', '.join(PRECISIONS)} "
                "(a runner bug: the detail of a mixed precision goes in its settings)"))
        row = Row.make(engine, launch.launcher.name, precision, result, log=io_dir / "runner.log",
                       run_dir=self.run_dir, point=point)
        row.start_overhead_s = start_overhead(io_dir, started)
        row.model_input = launch.row_input
        row.image = launch.launcher.provenance(engine)  # the image tag@id, the venv, the host Python
        # Noisy from the robust spread around each input's median: a detector's latency depends
        # on the image, so a CV over mixed images would flag a quiet machine.
        row.noisy = bool(result.latency_ms and result.latency_ms.robust_cv > cfg.timing.cv_threshold)
        row.parity = self.reference.parity(engine, precision, result, io_dir, point)
        outputs = io_dir / result.outputs_file if result.status == "ok" and result.outputs_file else None
        if outputs is not None and result.latency_ms and node is None:  # this machine's host steps
            host_phases.add(row, self.prepared, result.latency_ms.p50, outputs)
        if cfg.reporting.explain and row.parity and not row.parity.passed:
            row.divergence = explain(self, row, launch.model_path)
        evaluation = self.data.info.evaluation
        if evaluation and outputs is not None:
            reference = load_samples(str(self.reference.path)) if self.reference.have() else None
            row.accuracy = self.artifact.family.score(evaluation, self.data.inputs_path.parent,
                                                      load_samples(str(outputs)), self.artifact.output_names, reference)
        return row

    def on_node(self, row: Row, node: Optional[Node]) -> Row:
        return row if node is None else self.fleet.on_node(row, node, self.report, self.lock)


def explain(ctx: Context, row: Row, model_path: Path) -> Divergence:
    """--explain: a failed localisation is the row's note, never the end of the bench."""
    ctx.log(f"  {row.engine:<9} {row.precision_requested:<5} localising the divergence...")
    try:
        return explain_row(ctx.report, ctx.run_dir, row, ctx.cfg, ctx.launchers, ctx.log, model_path=model_path)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:
        atol, rtol = row.parity.atol, row.parity.rtol  # type: ignore[union-attr]
        return Divergence("failed", row.engine, row.precision_label(), atol, rtol,
                          note=f"{type(e).__name__}: {one_line(e)}")

"""`e2e bench`: export once, load and time every (engine, precision, point), merge into one report.

The pipeline, each step in its module: prepare.py (export, inputs), report_start.py (the report,
or the one resumed), context.py (what rows share; how one is launched and made), then a schedule:
resident.py + interleave.py (rows loaded together and timed in rounds, the default),
sequential.py (one after the other), fleet.py (on the nodes of a Ray cluster); arithmetic.py
(the peaks for the verdict) and save.py (the report, saved as each row ends)."""
import functools
import time
from typing import Any, Dict, Optional

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from shared.environment import cpu_flags

from coordinator import engines as engine_registry
from coordinator.config import BenchConfig
from coordinator.errors import UsageError
from coordinator.launchers import LaunchSettings, create_all
from coordinator.machine import host
from coordinator.machine.precisions import AUTO, accelerated, for_engine
from coordinator.report.document import Report, row_key
from coordinator.run import arithmetic, fleet as fleet_rows
from coordinator.run.context import Context
from coordinator.run.environments import Ahead, cancelled_on_error
from coordinator.run.points import points
from coordinator.run.prepare import check, prepare
from coordinator.run.report_start import INTERRUPTED, start_report
from coordinator.run.resident import run_interleaved
from coordinator.run.save import save
from coordinator.run.sequential import Work


@cancelled_on_error  # environments started ahead are ended if the bench stops before it needs them
def bench(cfg: BenchConfig, console: Any, resume: Optional[Report] = None) -> Report:
    """Run every (engine, precision, point) of `cfg`; with `resume`, only those not yet in its rows."""
    selected = engine_registry.select(cfg.execution.engines)
    unknown = sorted({o.partition(".")[0] for o in cfg.execution.engine_options} - set(engine_registry.discover()))
    if unknown:
        raise UsageError(f"--engine-option for unknown engine {', '.join(unknown)}; valid: "
                         f"{', '.join(engine_registry.discover())}")
    assert cfg.reporting.out is not None  # the config resolves it (absolute)
    cfg.reporting.out.mkdir(parents=True, exist_ok=True)
    # Messages carry paths and engine errors: print them as they are, never as markup.
    log = functools.partial(console.print, markup=False, highlight=False)
    checked = check(cfg)  # the model and data options first: a mistake there is the user's one line
    fleet = fleet_rows.FleetRun(cfg) if cfg.fleet.hosts else None  # before the export: a wrong cluster fails at once
    # sized against the free disk (one line if they cannot fit), then made while the model exports
    run = cfg.execution
    ahead = None if fleet else Ahead(selected, run.launcher, run.device or "cpu", run.cache_dir, log, run.memory_limit)
    started = time.perf_counter()
    phases = {"export_s": 0.0, "inputs_s": 0.0, "environments_s": 0.0, "reference_s": 0.0}
    prepared = prepare(cfg, checked, console, log, phases)
    report, done = start_report(cfg, prepared, resume)
    arithmetic.count_if_missing(report, prepared, console, log)
    launchers = ahead.launchers if ahead else create_all(LaunchSettings(run.cache_dir, run.memory_limit, log))
    if ahead is not None:  # the launchers that are making the environments; none is made under a clock
        phases["environments_s"] += ahead.wait()
    if fleet is not None:
        log(fleet.describe())
    ctx = Context(cfg, prepared, report, log, phases, launchers, console.is_terminal, fleet)
    # No refresh thread: the display is redrawn only when something changes (a row, a phase), so
    # the coordinator is idle while a runner's timed loop shares the CPU with it (a 10 Hz
    # refresh cost ~3% of a 2-core machine, measured against benchmark_app).
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True, auto_refresh=False)
    try:
        with progress:
            _rows(ctx, progress, selected, done)
        with console.status("this machine's arithmetic peaks (a matrix product per precision, once per machine)..."):
            arithmetic.measure_peaks(report, cfg, log)
    except KeyboardInterrupt:
        ctx.stop()
        report.interrupted = True
        report.notes.append(f"{INTERRUPTED}: the engines without a row did not run (or did not finish); "
                            f"`e2e bench --resume {cfg.reporting.out}` runs them.")
        raise
    finally:
        report.setup.phase_seconds = {**phases, "total_s": time.perf_counter() - started}
        if fleet is not None:
            fleet.close(report)
        used = {r.launcher for r in report.results}
        runtimes = {name: d for name, launcher in launchers.items() if name in used and (d := launcher.describe())}
        if runtimes:  # e.g. the Docker daemon's version, when a row ran in a container
            report.device.launchers = runtimes
        save(report, cfg.reporting.out)
    return report


def _rows(ctx: Context, progress: Progress, selected: list, done: set) -> None:
    """Every row not yet done, by the schedule the run asks for: interleaved rounds (the
    default), one after the other, or on the fleet's nodes."""
    cfg = ctx.cfg
    sweep = points(cfg.points.scenarios, cfg.points.batch, cfg.points.concurrency)
    kinds = list(ctx.fleet.nodes) if ctx.fleet else [""]
    native = accelerated(cfg.execution.device, cpu_flags(), host.nvidia_gpus()) if AUTO in cfg.points.precisions else []
    queues: Dict[str, list] = {
        kind: [(e, p, pt) for e in selected for p in for_engine(cfg.points.precisions, e.precisions, native)
               for pt in sweep if row_key(e.id, p, pt, "", kind) not in done] for kind in kinds}
    work = Work(ctx, progress, progress.add_task("engines", total=sum(map(len, queues.values()))), done)
    interleaved = cfg.sequential_because() is None
    if ctx.fleet is None:
        run_interleaved(work, queues[""]) if interleaved else work.drain(queues[""])
        return
    if not ctx.reference.have():  # once, here: the nodes' rows are all compared with it
        ctx.reference.make()
    fleet_rows.interleave_on_nodes(work, queues) if interleaved else fleet_rows.on_nodes(work, queues)
    fleet_rows.unrun(ctx.report, queues, cfg.reporting.out)

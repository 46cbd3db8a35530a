"""`e2e bench`: export once, run every (engine, precision) in turn, merge into one report."""
import contextlib
import functools
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from shared import atomic
from shared.environment import cpu_flags
from shared.errors import E2EError
from shared.result import RunResult
from shared.spec import PRECISIONS, RunSpec
from shared.tensors import load_samples

from coordinator import __version__, engines as engine_registry, tasks
from coordinator.model import dataset, export, flops, zoo as models, testdata
from coordinator.machine import host, peak
from coordinator.report import pictures
from coordinator.config import BenchConfig
from coordinator.divergence.search import Divergence
from coordinator.engines import REFERENCE, Engine
from coordinator.run.environments import Ahead, cancelled_on_error
from coordinator.errors import DISK_FULL, UsageError, disk_full
from coordinator.divergence.explain import explain_row
from coordinator.launchers.ray.cluster import Node
from coordinator.launchers import EnvironmentFailed, LaunchSettings, Launcher, choose, create_all
from coordinator.launchers.process import start_overhead
from coordinator.report.parity import tolerance_precision
from coordinator.machine.precisions import AUTO, accelerated, for_engine
from coordinator.run.points import Point, grown, points
from coordinator.run.tuning import TUNED, best as best_options, candidates, record
from coordinator.run.progress import watch_progress
from coordinator.run.launch import Launch, launcher_failed
from coordinator.run.resident import is_reference, run_interleaved
from coordinator.report.document import Report, Row, row_key
from coordinator.report.sections import ModelInfo, Setup
from coordinator.report.views import write_report


@cancelled_on_error  # environments started ahead are ended if the bench stops before it needs them
def bench(cfg: BenchConfig, console: Any, resume: Optional[Report] = None) -> Report:
    """Run every (engine, precision) of `cfg`; with `resume`, only those not yet in its rows."""
    selected = engine_registry.select(cfg.engines)
    unknown = sorted({o.partition(".")[0] for o in cfg.engine_options} - set(engine_registry.discover()))
    if unknown:
        raise UsageError(f"--engine-option for unknown engine {', '.join(unknown)}; valid: "
                         f"{', '.join(engine_registry.discover())}")
    source = models.resolve(cfg.model, cfg.input_size, cfg.inputs, cfg.exporter)
    labelled = dataset.load(cfg.dataset, cfg.limit) if cfg.dataset else None
    for option, folder in (("--images", cfg.images), ("--calibration", cfg.calibration)):
        if folder is not None:  # a bad folder fails before the (slow) export
            testdata.image_files(folder, option)
    assert cfg.out is not None  # the config resolves it (absolute)
    run_dir = cfg.out
    run_dir.mkdir(parents=True, exist_ok=True)
    # Messages carry paths and engine errors: print them as they are, never as markup.
    log = functools.partial(console.print, markup=False, highlight=False)
    fleet = join_fleet(cfg) if cfg.hosts else None  # before the export: a wrong cluster fails at once
    # sized against the free disk (one line if they cannot fit), then made while the model exports
    ahead = None if cfg.hosts else Ahead(selected, cfg.launcher, cfg.device or "cpu", cfg.cache_dir, log,
                                         cfg.memory_limit)
    started = time.perf_counter()
    phases = {"export_s": 0.0, "inputs_s": 0.0, "environments_s": 0.0, "reference_s": 0.0}

    t = time.perf_counter()
    with console.status(f"[bold]{source.name}[/]: export to ONNX (cached after the first run)..."):
        artifact = export.prepare(source, cfg.weights, cfg.seed, cfg.opset, cfg.cache_dir, log=log)
    phases["export_s"] = time.perf_counter() - t
    t = time.perf_counter()
    with console.status("test inputs..."):
        data = testdata.prepare(artifact, cfg.images, _input_size(source, artifact, cfg), cfg.cache_dir, labelled,
                                device=cfg.device or "cpu", log=log)
        calibration = testdata.prepare(artifact, cfg.calibration, _input_size(source, artifact, cfg), cfg.cache_dir,
                                       log=log) if cfg.calibration else None
    phases["inputs_s"] = time.perf_counter() - t

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    report = resume or Report(
        e2e_version=__version__, created=now, command=" ".join(["e2e", *sys.argv[1:]]), run_dir=str(run_dir),
        setup=_setup(cfg), device=host.describe(), model=artifact.info,
        data=replace(data.info, inputs_path=str(data.inputs_path),
                     calibration=replace(calibration.info, inputs_path=str(calibration.inputs_path)).to_dict()
                     if calibration else "the test inputs"),
    )
    pictures.keep_input(report, run_dir)  # the report's pictures outlive the cache
    if report.model.gflop is None and artifact.torch_card is not None:  # an export made by an older e2e
        with console.status("counting the model's arithmetic..."):
            report.model.gflop = _gflop(artifact, data.inputs_path, log)
    done = {r.key() for r in report.results}
    if resume:
        report.interrupted = False
        report.notes = [n for n in report.notes if not n.startswith((INTERRUPTED, UNRUN))]
        report.notes.append(f"Resumed at {now} with `{' '.join(['e2e', *sys.argv[1:]])}`: "
                            f"{len(done)} row(s) were kept from the interrupted run.")
    elif artifact.info.weights.kind == "random":
        report.notes.append("Weights are seeded random (" + artifact.info.weights.detail + "): speed "
                            "and parity figures are valid, task accuracy is not meaningful.")
    if not resume and source.model is not None and source.model.note:  # a zoo model not quite its name
        report.notes.append(source.model.note)
    why = cfg.sequential_because()
    if why and cfg.schedule == "interleaved":
        report.notes.append(f"Rows ran one after the other ({why}): each row's figures are of its own time window, "
                            "and rows compared across windows differ by the machine's drift too.")
    ctx = _Context(cfg, run_dir, artifact, data, report, log, phases)
    if ahead is not None:  # the launchers that are making the environments; none is made under a clock
        ctx.launchers = ahead.launchers
        phases["environments_s"] += ahead.wait()
    ctx.console_is_terminal = console.is_terminal
    if fleet is not None:
        ctx.join_fleet(*fleet)
    ctx.calibration_path = str(calibration.inputs_path) if calibration else None
    ctx.source = source
    # No refresh thread: the display is redrawn only when something changes (a row, a phase), so
    # the coordinator is idle while a runner's timed loop shares the CPU with it (a 10 Hz
    # refresh cost ~3% of a 2-core machine, measured against benchmark_app).
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True, auto_refresh=False)
    try:
        with progress:
            sweep = points(cfg.scenarios, cfg.batch, cfg.concurrency)
            kinds = list(ctx.fleet_nodes) or [""]
            native = accelerated(cfg.device, cpu_flags(), host.nvidia_gpus()) if AUTO in cfg.precisions else []
            queues = {kind: [(e, p, pt) for e in selected for p in for_engine(cfg.precisions, e.precisions, native)
                             for pt in sweep
                             if row_key(e.id, p, pt, "", kind) not in done] for kind in kinds}
            work = _Work(ctx, progress, progress.add_task("engines", total=sum(map(len, queues.values()))), done)
            interleaved = cfg.sequential_because() is None
            if not ctx.fleet_nodes and interleaved:
                run_interleaved(work, queues[""])
            elif not ctx.fleet_nodes:
                work.drain(queues[""], None)
            else:
                if not ctx._have_reference():  # once, here: the nodes' rows are all compared with it
                    ctx._make_reference()
                work.interleave_on_nodes(queues) if interleaved else work.on_nodes(queues)
                _unrun(report, queues, run_dir)
        with console.status("this machine's arithmetic peaks (a matrix product per precision, once per machine)..."):
            _peaks(report, cfg, log)
    except KeyboardInterrupt:
        ctx.stop()
        report.interrupted = True
        report.notes.append(f"{INTERRUPTED}: the engines without a row did not run (or did not finish); "
                            f"`e2e bench --resume {run_dir}` runs them.")
        raise
    finally:
        report.setup.phase_seconds = {**phases, "total_s": time.perf_counter() - started}
        ctx.close()
        used = {r.launcher for r in report.results}
        runtimes = {name: d for name, launcher in ctx.launchers.items() if name in used and (d := launcher.describe())}
        if runtimes:  # e.g. the Docker daemon's version, when a row ran in a container
            report.device.launchers = runtimes
        _save(report, run_dir)
    return report


def _gflop(artifact: Any, inputs_path: Path, log: Any) -> Optional[float]:
    try:
        return flops.of_card(artifact.torch_card, list(load_samples(str(inputs_path))[0].values()))
    except Exception as e:  # a figure for the verdict, never a reason to stop the bench
        log(f"The model's arithmetic could not be counted ({type(e).__name__}: {' '.join(str(e).split())[:200]})")
        return None


def _peaks(report: Report, cfg: BenchConfig, log: Any) -> None:
    """This machine's measured peak at every precision (after every row: nothing else runs
    meanwhile; once per machine), for the verdict's share of the peak and the peaks above it."""
    rows = [r for r in report.results if r.status == "ok" and not r.machine and r.latency_ms and r.batch_size == 1
            and r.scenario == "latency"]  # one call at a time: its p50 is one call's time
    if report.model.gflop is None or not rows:
        return
    reached: Dict[str, float] = {}
    for r in rows:
        reached[r.precision] = max(reached.get(r.precision, 0.0), report.model.gflop / (r.latency_ms.p50 / 1e3))
    device = cfg.device or "cpu"
    d = report.device
    identity = d.gpus[0].name if device != "cpu" and d.gpus else f"{d.cpu} {' '.join(d.cpu_flags)}"
    try:
        report.device.peak_gflops = peak.peaks(cfg.cache_dir, cfg.threads or 1, device, identity, reached=reached)
    except Exception as e:
        log(f"This machine's arithmetic peaks could not be measured ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:200]})")


def _save(report: Report, run_dir: Path, views: bool = True) -> None:
    """Write the report; on a full disk, one line saying what report.json still holds (each
    file is replaced whole, so the last complete one stays)."""
    try:
        write_report(report, run_dir, views=views)
    except OSError as e:
        if e.errno not in DISK_FULL:
            raise
        try:
            saved = len(json.loads((run_dir / "report.json").read_text())["results"])
        except (OSError, ValueError, KeyError, TypeError):
            saved = 0
        raise E2EError(f"{disk_full(e)}: {run_dir / 'report.json'} holds {saved} of the {len(report.results)} "
                       f"row(s) measured; free some space, then `e2e bench --resume {run_dir}` runs the rest"
                       ) from None


INTERRUPTED = "The run was interrupted"
UNRUN = "Fleet rows not run"


class _Work:
    """Runs the rows of a queue one after the other: here, or on a fleet node (one thread per
    node, taking rows from its kind's queue). A row may add rows to its queue: its tuned variant
    (--tune) and the next concurrency of --concurrency auto."""

    def __init__(self, ctx: "_Context", progress: Progress, task: Any, done: set) -> None:
        self.ctx, self.progress, self.task, self.done = ctx, progress, task, done
        self.lock = ctx.lock
        self.best: Dict[tuple, float] = {}  # --concurrency auto: its best samples/s so far per row group
        self.failure: Optional[BaseException] = None

    def drain(self, queue: list, node: Optional[Node]) -> None:
        ctx, cfg, progress = self.ctx, self.ctx.cfg, self.progress
        kind = node.kind if node else ""
        launcher = ctx.fleet_launchers.get(node.node_id) if node else None
        while not ctx.stopped and not (launcher and launcher.lost):
            with self.lock:
                if not queue:
                    return
                engine, precision, point = queue.pop(0)
            where = " ".join(p for p in (precision, point.label(), f"@{kind}" if kind else "") if p)
            title = f"[bold]{engine.id}[/] at {where}"
            if node is None:  # the fleet's rows run side by side: one line each, no live description
                progress.update(self.task, description=title, refresh=True)
            if not ctx.console_is_terminal or node is not None:
                ctx.log(f"  {engine.id:<9} {where:<5} started")
            with watch_progress(ctx.io_dir(engine, precision, point, machine=kind),
                                lambda text, title=title: progress.update(self.task, description=f"{title}: {text}", refresh=True)) \
                    if node is None else contextlib.nullcontext():
                row = ctx.run(engine, precision, point, node=node)
            if ctx.stopped:  # interrupted meanwhile: the row is not whole
                return
            self.add(row, f"  {engine.id:<9} {where:<5} {row.status:<11} {row.summary()}")
            if cfg.tune and row.status == "ok" and row_key(engine.id, precision, point, TUNED, kind) not in self.done:
                tuned = ctx.tune(engine, precision, point, node=node)
                if tuned is not None and not ctx.stopped:
                    self.add(tuned, f"  {engine.id:<9} {where} tuned {tuned.status:<11} {tuned.summary()}", count=False)
            with self.lock:
                group = (kind, engine.id, precision, point.scenario, point.batch)
                more = grown(point, row.throughput_per_s if row.status == "ok" else None, self.best.get(group))
                if row.status == "ok" and row.throughput_per_s and more is not None:
                    self.best[group] = max(self.best.get(group, 0.0), row.throughput_per_s)
                if more is not None and row_key(engine.id, precision, more, "", kind) not in self.done:
                    queue.insert(0, (engine, precision, more))
                    progress.update(self.task, total=progress.tasks[0].total + 1)
            progress.refresh()

    def add(self, row: Row, line: str, count: bool = True) -> None:
        """A finished row into the report, saved at once: nothing measured is lost."""
        with self.lock:
            self.ctx.report.results.append(row)
            _save(self.ctx.report, self.ctx.run_dir, views=False)
            if count:
                self.progress.advance(self.task)
        self.ctx.log(line)

    def interleave_on_nodes(self, queues: Dict[str, list]) -> None:
        """Interleaved fleet: each kind's rows shared out among its nodes, each node timing its
        share in rounds (through its NodeHost actor, which holds the node's e2e-bench unit). A
        node whose share lacks the reference loads it to pair with, so that every row's ratio to
        the reference is paired on its own node. Rows a lost node could not load go back to
        their kind's queue (a note says so; --resume runs them)."""
        reference = engine_registry.discover()[REFERENCE]
        shares = []
        for kind, queue in queues.items():
            nodes = self.ctx.fleet_nodes[kind]
            partner = reference if any(is_reference(item) for item in queue) else None
            shares += [(queue[i::len(nodes)], node, partner, queue) for i, node in enumerate(nodes)
                       if queue[i::len(nodes)]]  # a node with no row of its own takes no partner either
        for _, _, _, queue in shares:
            queue.clear()

        def run(share: list, node: Node, partner: Any, queue: list) -> None:
            launcher = self.ctx.fleet_launchers[node.node_id]
            try:
                run_interleaved(self, share, node, partner)
            finally:
                launcher.release()
                with self.lock:
                    queue += share  # what the node did not load (it left the cluster)

        self.in_threads([(args[1].label(), lambda a=args: run(*a)) for args in shares])

    def in_threads(self, jobs: List[Tuple[str, Any]]) -> None:
        """Each job in a thread of its own; a bug in one is raised again here."""
        def call(job: Any) -> None:
            try:
                job()
            except BaseException as e:  # a bug: raised again in the main thread
                self.failure = e

        threads = [threading.Thread(target=call, args=(job,), daemon=True, name=name) for name, job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():  # a timed join, so Ctrl-C reaches this thread
                thread.join(0.5)
        if self.failure is not None:
            raise self.failure

    def on_nodes(self, queues: Dict[str, list]) -> None:
        """Every node drains its kind's queue in a thread of its own; Ray's e2e-bench resource
        keeps it to one row at a time per node, whoever else uses the cluster."""
        self.in_threads([(node.label(), lambda q=queues[kind], n=node: self.drain(q, n))
                         for kind, nodes in self.ctx.fleet_nodes.items() for node in nodes])


def _unrun(report: Report, queues: Dict[str, list], run_dir: Path) -> None:
    """Rows a fleet kind could not run because its nodes left the cluster: said, for --resume."""
    for kind, queue in queues.items():
        if queue:
            report.notes.append(f"{UNRUN}: {len(queue)} row(s) of machine kind {kind} did not run: its node(s) left the "
                                f"Ray cluster; `e2e bench --resume {run_dir}` runs them once a node of that kind is back.")


class _Context:
    """What every engine run shares: the export, the inputs, the reference outputs."""

    def __init__(self, cfg: BenchConfig, run_dir: Path, artifact: export.Artifact,
                 data: testdata.TestData, report: Report, log: Any, phases: dict) -> None:
        self.cfg, self.run_dir, self.artifact, self.data, self.report, self.log = \
            cfg, run_dir, artifact, data, report, log
        self.phases = phases  # seconds spent making environments and the reference, for the report
        self.launchers = create_all(LaunchSettings(cfg.cache_dir, cfg.memory_limit, log))
        self.reference_note = ""
        self.calibration_path: Optional[str] = None
        self.source: models.ModelSource = models.ModelSource()
        self.exports: Dict[int, export.Artifact] = {}  # exports at other opsets, for engines that load only those
        self.exporting = threading.Lock()  # fleet rows run side by side: one export at a time
        self.console_is_terminal = False
        # fleet mode (--hosts): the nodes of each machine kind, and the launcher of each node
        self.fleet: Any = None
        self.fleet_nodes: Dict[str, List[Node]] = {}
        self.fleet_launchers: Dict[str, Any] = {}
        self.stopped = False  # Ctrl-C: the fleet's threads take no more rows
        self.lock = threading.Lock()  # the report and the queues, which fleet threads share

    def join_fleet(self, fleet: Any, nodes: Dict[str, List[Node]]) -> None:
        from coordinator.launchers.ray.launcher import RayLauncher

        self.fleet, self.fleet_nodes = fleet, nodes
        self.fleet_launchers = {node.node_id: RayLauncher(self.fleet, node, self.cfg.launcher, self.cfg.memory_limit)
                                for nodes in self.fleet_nodes.values() for node in nodes}
        self.log(f"Fleet: Ray at {self.fleet.address}, " + "; ".join(
            f"{kind}: {len(nodes)} node(s)" for kind, nodes in self.fleet_nodes.items()))

    def stop(self) -> None:
        """Ctrl-C: no more rows; the fleet's running rows are cancelled (each node's launcher
        stops its runner as a local run's would)."""
        self.stopped = True
        for launcher in self.fleet_launchers.values():
            launcher.cancel()

    def close(self) -> None:
        if self.fleet is not None:
            self.report.notes[:] = [n for n in self.report.notes if not n.startswith("Fleet:")]
            self.report.notes.append(f"Fleet: Ray {self.fleet.describe()['ray']} at {self.fleet.address}; "
                                     + ("each node's rows interleaved in rounds there (the node's e2e-bench unit "
                                        "held for the run)." if self.cfg.sequential_because() is None else
                                        "one row at a time per node (its e2e-bench resource)."))
            self.fleet.close()
            self.fleet = None

    def _launcher(self, engine: Engine, node: Optional[Node] = None) -> Tuple[Optional[Launcher], Optional[str]]:
        """The launcher for this engine and, if it cannot run the engine, why (the policy of
        coordinator/launchers/registry.py: `auto` takes Docker when the image is built, else the
        virtualenv). On a fleet node: the node's launcher, which applies that policy there."""
        if node is not None:
            launcher = self.fleet_launchers[node.node_id]
            return launcher, launcher.unavailable(engine, self.cfg.device or "cpu")
        return choose(engine, self.cfg.launcher, self.cfg.device or "cpu", self.launchers)

    def io_dir(self, engine: Engine, precision: str, point: Point = Point(), variant: str = "",
               machine: str = "") -> Path:
        return self.run_dir / "logs" / (f"{engine.id}-{precision}{point.folder()}{'-' + variant if variant else ''}"
                                        f"{'@' + machine if machine else ''}")

    def tune(self, engine: Engine, precision: str, point: Point, node: Optional[Node] = None) -> Optional[Row]:
        """--tune: every candidate of the engine's declared options for a short loop, then the
        best in full, as a row marked tuned that keeps the search (coordinator/run/tuning.py)."""
        trials = []
        for k, options in enumerate(candidates(engine, self.cfg.options_for(engine.id))):
            self.log(f"  {engine.id:<9} {precision} {point.label()} trying {options}")
            trials.append((options, self.run(engine, precision, point, options=options, variant=f"search{k + 1}",
                                             max_time=self.cfg.tune_time, node=node)))
        if not trials:
            return None
        chosen = best_options(trials)
        if chosen is None:
            row = Row.make(engine, "", precision, RunResult(engine.id, "failed", reason=(
                "no candidate of the search ran and passed parity; see `search`")), point=point)
            row.machine = node.kind if node else ""
        else:
            row = self.run(engine, precision, point, options=chosen, variant=TUNED, node=node)
        row.variant, row.search = TUNED, record(trials)
        row.settings["tuned_options"] = chosen
        return row

    def run(self, engine: Engine, precision: str, point: Point = Point(), options: Optional[Dict[str, Any]] = None,
            variant: str = "", max_time: Optional[float] = None, node: Optional[Node] = None) -> Row:
        """One row; `options` instead of the -o ones, `max_time` instead of --max-time (a search);
        on `node` of the fleet instead of here."""
        return self.on_node(self._run(engine, precision, point, options, variant, max_time, node), node)

    def on_node(self, row: Row, node: Optional[Node]) -> Row:
        """A fleet row: its machine kind and node, the node's launcher that ran it, and the node's
        device section (from the node's answer to this row)."""
        if node is None:
            return row
        row.machine, row.node = node.kind, node.label()
        launcher = self.fleet_launchers[node.node_id]
        if row.launcher:  # launched: the node says which of its launchers ran it, and on what
            row.launcher = launcher.ran_with()
            answer = launcher.answer
            if answer.get("device"):
                with self.lock:
                    self.report.machines.setdefault(node.kind, {})[node.label()] = {
                        **answer["device"], **({"launchers": answer["runtime"]} if answer.get("runtime") else {})}
        return row

    def _run(self, engine: Engine, precision: str, point: Point, options: Optional[Dict[str, Any]],
             variant: str, max_time: Optional[float], node: Optional[Node]) -> Row:
        launch = self.launch(engine, precision, point, options, variant, max_time, node)
        if isinstance(launch, Row):
            return launch
        started = time.time()
        try:
            result = launch.launcher.run(engine, launch.spec, launch.io_dir, self.cfg.timeout)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # the launcher itself broke (a Docker API error, a GPU that is not there): a row
            result = launcher_failed(engine, launch.launcher, e)
        return self.finish(launch, result, started, node)

    def launch(self, engine: Engine, precision: str, point: Point = Point(), options: Optional[Dict[str, Any]] = None,
               variant: str = "", max_time: Optional[float] = None, node: Optional[Node] = None) -> Any:
        """What a row's runner is started with (`Launch`), or the row already when nothing is to
        be launched (skipped, no environment, no export at the engine's opset)."""
        cfg = self.cfg
        launcher, unavailable = self._launcher(engine, node)
        io_dir = self.io_dir(engine, precision, point, variant, machine=node.kind if node else "")
        reason = self._skip_reason(engine, precision, point) or unavailable
        if reason:  # nothing was launched
            return Row.make(engine, "", precision, RunResult(engine.id, "skipped", reason=reason), point=point)
        try:
            with self.exporting:
                model_path, model_info, row_input = self._model_for(engine)
        except Exception as e:  # an export at this engine's opset failed: its row, not the bench
            return Row.make(engine, "", precision, RunResult.from_error(engine.id, e, stage="setup"), point=point)
        t = time.perf_counter()
        try:
            launcher.prepare(engine)
        except EnvironmentFailed as e:
            return Row.make(engine, launcher.name, precision,
                            RunResult.from_error(engine.id, e, stage="setup"), point=point)
        finally:
            self.phases["environments_s"] += time.perf_counter() - t
        spec = RunSpec(
            engine=engine.id, model_path=str(model_path), inputs_path=str(self.data.inputs_path),
            model_sha256=model_info.sha256 if model_info else "",
            model_files=list(model_info.external_data) if model_info else [],
            device=cfg.device or "cpu", precision=precision, warmup=cfg.warmup, warmup_time_s=cfg.warmup_time,
            iterations=None if max_time else cfg.iterations, min_time_s=0.0 if max_time else cfg.min_time or 0.0,
            target_ci=cfg.target_ci, max_time_s=max_time or cfg.max_time,
            repeats=cfg.repeats, threads=cfg.threads or 1, scenario=point.scenario, batch_size=point.batch,
            concurrency=point.in_flight if point.scenario == "throughput" else 1, cache_dir=str(cfg.cache_dir / "engines" / engine.id),
            calibration_path=self.calibration_path if precision == "int8" else None,
            memory_limit_mb=cfg.memory_limit, fault=injected_fault(engine.id),
            engine_options=cfg.options_for(engine.id) if options is None else options,
        )
        return Launch(engine, precision, point, launcher, spec, io_dir, model_path, row_input)

    def finish(self, launch: "Launch", result: RunResult, started: float, node: Optional[Node] = None) -> Row:
        """The row of a runner's result: parity, host phases, divergence, task accuracy."""
        cfg, engine, precision, point, io_dir = self.cfg, launch.engine, launch.precision, launch.point, launch.io_dir
        if result.precision and result.precision not in PRECISIONS:  # detail belongs in settings, not here
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
        row.noisy = bool(result.latency_ms and result.latency_ms.robust_cv > cfg.cv_threshold)
        row.parity = self._parity(engine, precision, result, io_dir, point)
        if result.status == "ok" and result.outputs_file and result.latency_ms and node is None:  # this machine's
            self._host_phases(row, result.latency_ms.p50, io_dir / result.outputs_file)
        if cfg.explain and row.parity and not row.parity.passed:
            row.divergence = self._explain(row, launch.model_path)
        evaluation = self.data.info.evaluation
        if evaluation and result.status == "ok" and result.outputs_file:
            reference = self.data.reference_path
            row.accuracy = self.artifact.family.score(
                evaluation, self.data.inputs_path.parent, load_samples(str(io_dir / result.outputs_file)),
                self.artifact.output_names, load_samples(str(reference)) if self._have_reference() else None)
        return row

    def _host_phases(self, row: Row, infer_ms: float, outputs: Path) -> None:
        """A family that pre/post-processes on the host (a YOLO pipeline): those steps timed here
        on this row's outputs, beside the engine's median, and the end-to-end sum."""
        from PIL import Image

        family = self.artifact.family
        if type(family).host_phases is tasks.Task.host_phases:  # the graph holds every step
            return
        size = tuple(self.artifact.info.input_size or ())
        if len(size) != 2:
            return
        # a test image to time the host steps on: the first still on disk (cached inputs may name a
        # folder since removed), else one of e2e's own photographs
        images = [p for p in map(Path, self.data.info.images or []) if p.is_file()] or \
            sorted(testdata.DEFAULT_IMAGES.iterdir())
        with Image.open(images[0]) as image:
            host = self.artifact.family.host_phases(image.convert("RGB"), size, load_samples(str(outputs))[0])
        if host:
            (pre, pre_ms), (post, post_ms) = host.items()
            row.breakdown_ms = {pre: pre_ms, "inference (engine p50)": infer_ms, post: post_ms,
                                "end to end": pre_ms + infer_ms + post_ms}

    def _explain(self, row: Row, model_path: Path) -> Divergence:
        """--explain: a failed localisation is the row's note, never the end of the bench."""
        self.log(f"  {row.engine:<9} {row.precision_requested:<5} localising the divergence...")
        try:
            return explain_row(self.report, self.run_dir, row, self.cfg, self.launchers, self.log, model_path=model_path)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:
            atol, rtol = row.parity.atol, row.parity.rtol  # type: ignore[union-attr]
            return Divergence("failed", row.engine, row.precision_label(), atol, rtol,
                              note=f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")

    def _model_for(self, engine: Engine) -> Tuple[Path, Optional[ModelInfo], str]:
        """What the engine consumes (its manifest says): the PyTorch model card, or the ONNX
        export at an opset it loads — exported once per distinct opset, cached like the first."""
        if engine.consumes == "torch":
            assert self.artifact.torch_card is not None  # else _skip_reason skipped it
            return self.artifact.torch_card, None, "the PyTorch model"
        opset = engine.opset_for(self.cfg.opset)
        if opset == self.artifact.info.opset or self.source.onnx_path is not None:
            return self.artifact.onnx_path, self.artifact.info, f"ONNX opset {self.artifact.info.opset}"
        if opset not in self.exports:
            t = time.perf_counter()
            try:
                self.exports[opset] = export.prepare(self.source, self.cfg.weights, self.cfg.seed, opset,
                                                     self.cfg.cache_dir, log=self.log)
            except E2EError:
                raise
            except Exception as e:
                raise E2EError(f"the export at opset {opset} ({engine.name} loads opsets {engine.opsets[0]}-"
                               f"{engine.opsets[1]}) failed: {type(e).__name__}: {' '.join(str(e).split())[:300]}") from None
            finally:
                self.phases["export_s"] += time.perf_counter() - t
        low, high = engine.opsets
        chosen = self.exports[opset]
        return chosen.onnx_path, chosen.info, f"ONNX opset {opset} (its own export: {engine.name} loads opsets {low}-{high})"

    def _skip_reason(self, engine: Engine, precision: str, point: Point = Point()) -> Optional[str]:
        if point.batch > 1 and not self.artifact.family.batch_axis:
            return (f"batch {point.batch}: a {self.artifact.task} model has no batch axis (it takes a list of "
                    "images); run it at --batch 1")
        if engine.consumes == "torch" and self.artifact.torch_card is None:
            return "no PyTorch model to run: the model was given as an ONNX file"
        given, low, high = self.artifact.info.opset, *engine.opsets
        if engine.consumes == "onnx" and self.source.onnx_path is not None and not low <= given <= high:
            return (f"{engine.name} loads ONNX opsets {low}-{high}, and the model was given as an ONNX file at "
                    f"opset {given}: convert it, or give the PyTorch model so e2e exports it at opset {high}")
        return engine_registry.skip_reason(engine, self.cfg.device or "cpu", precision)

    def _parity(self, engine: Engine, precision: str, result: RunResult, io_dir: Path,
                point: Point = Point()) -> Optional[Any]:
        reference = self.data.reference_path
        outputs = io_dir / result.outputs_file if result.status == "ok" and result.outputs_file else None
        # the reference is PyTorch at fp32, one input at a time: a batched point is compared with it
        if engine.id == REFERENCE and precision == "fp32" and point == Point() and not self._have_reference():
            if outputs is not None:
                self._keep_reference(outputs)  # this run *is* the reference
            else:
                self._no_reference(result)
            return None
        if outputs is None:
            return None
        if not self._have_reference():
            self._make_reference()
            if not self._have_reference():
                return None
        return self.artifact.family.compare(load_samples(str(reference)), load_samples(str(outputs)),
                                            tolerance_precision(result.precision or precision, precision))

    def _no_reference(self, result: RunResult) -> None:
        self.reference_note = f"no parity: the PyTorch reference run ended {result.status}: {result.reason}"
        self.report.notes.append(self.reference_note)

    def _make_reference(self) -> None:
        """The reference outputs when the reference engine is not among the rows (one pass)."""
        torch_engine = engine_registry.discover()[REFERENCE]
        if self.artifact.torch_card is None or self.reference_note:
            return
        self.log("Computing the PyTorch reference outputs (once)...")
        t = time.perf_counter()
        io_dir = self.run_dir / "logs" / "reference"
        spec = RunSpec(engine=REFERENCE, model_path=str(self.artifact.torch_card),
                       inputs_path=str(self.data.inputs_path), warmup=0, iterations=1, min_time_s=0.0,
                       threads=self.cfg.threads or 1, device=self.cfg.device or "cpu")
        result = self.launchers["host"].run(torch_engine, spec, io_dir, self.cfg.timeout)
        self.phases["reference_s"] += time.perf_counter() - t
        if result.status == "ok" and result.outputs_file:
            self._keep_reference(io_dir / result.outputs_file)
        else:
            self._no_reference(result)

    def _have_reference(self) -> bool:
        """Whether the reference outputs are in the cache whole; damaged ones are made again."""
        return atomic.problem(str(self.data.reference_path)) is None

    def _keep_reference(self, outputs: Path) -> None:
        """Into the cache once, whole: another run may be keeping the same reference now."""
        atomic.ensure(str(self.data.reference_path), lambda tmp: shutil.copyfile(outputs, tmp),
                      "The cached PyTorch reference outputs", log=self.log, phase="reference")


def join_fleet(cfg: BenchConfig) -> Tuple[Any, Dict[str, List[Node]]]:
    """--hosts: the Ray cluster, and the nodes of each machine kind asked for."""
    from coordinator.launchers.ray.cluster import Fleet

    assert cfg.hosts
    fleet = Fleet(cfg.ray_address)
    try:
        return fleet, fleet.select(cfg.hosts)
    except BaseException:
        fleet.close()
        raise


def injected_fault(engine_id: str) -> str:
    """The fault-injection test hook: `E2E_FAULT=ort=abort,tvm=hang` (see shared/faults.py)."""
    wanted = dict(item.partition("=")[::2] for item in os.environ.get("E2E_FAULT", "").split(",") if "=" in item)
    return wanted.get(engine_id, "")


def _input_size(source: models.ModelSource, artifact: export.Artifact, cfg: BenchConfig) -> tuple:
    if cfg.input_size:
        return cfg.input_size
    if source.model is not None:
        return source.model.input_size
    shape = artifact.info.inputs[0].shape  # an ONNX file: its static H, W when it has them
    hw = shape[-2:]
    return tuple(hw) if len(hw) == 2 and all(isinstance(d, int) and d > 0 for d in hw) else (224, 224)


def _git_commit() -> str:
    """The e2e checkout's commit, when e2e runs from one."""
    import subprocess

    try:
        done = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _setup(cfg: BenchConfig) -> Setup:
    return Setup(
        e2e_commit=_git_commit(), config=cfg.to_dict(),  # the settings, once: views read them from here
        copy_policy="host<->device copies are inside the timed region for every engine",
        timed_region="one engine call on a preloaded input, monotonic clock, after warm-up; "
                     "outputs freed after the clock stops; Python's GC collected, frozen and disabled",
    )

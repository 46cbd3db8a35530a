"""The interleaved schedule: load every row's runner (as many as memory holds), time them
together in rounds (`interleave.py`), then end each runner and make its row. On this machine,
or on one fleet node (its rows, through the node's NodeHost actor).

Rows load one at a time, nothing timed meanwhile: a runner converts, compiles, warms up and
takes its parity outputs, says ready, and waits. When available memory falls under a margin
the rows loaded so far are timed as a group and ended before more load; every later group
loads the reference again, so that each group's ratios are to the same reference. A fleet node
whose rows do not include the reference loads it as a partner: timed with them, no row of its own.
The reference loads in two processes at least, every row in --processes (round_stats.py: a
process's own gap is part of what a figure is known to); only a row's first process makes its row.
"""
import time
from typing import Any, List, Optional

from shared.result import RunResult
from shared.errors import one_line

from coordinator.engines import REFERENCE
from coordinator.launchers.process import current_stage
from coordinator.report.document import Row
from coordinator.run.interleave import Plan, Slot, run_rounds
from coordinator.run.launch import launcher_failed

# Stop loading more rows into a group when available memory would fall under this share of it.
MEMORY_MARGIN = 0.15
MEMORY_MARGIN_MIN_BYTES = 2 << 30
REFERENCE_KEY = f"{REFERENCE} fp32"
PARTNER = "partner"  # the io folder's variant of a reference loaded only to pair with
REFERENCE_PROCESSES = 2  # at least: the run sees how far one process moves the figure every ratio shares


def memory_low() -> bool:
    import psutil

    vm = psutil.virtual_memory()
    return vm.available < max(MEMORY_MARGIN * vm.total, MEMORY_MARGIN_MIN_BYTES)


def run_interleaved(work: Any, queue: list, node: Any = None, partner: Optional[Any] = None) -> None:
    """Every (engine, precision, point) of `queue`, interleaved, rows added to the report as they
    end; on `node` of the fleet when given, with `partner` (the reference engine) loaded to pair
    with when the queue lacks the reference. Rows a lost node could not load are left in `queue`."""
    ctx = work.ctx
    rows = sorted(queue, key=lambda item: not is_reference(item))  # the reference loads first
    queue.clear()
    if partner is not None and not any(is_reference(item) for item in rows):
        rows.insert(0, (partner, "fp32", None))
    group: List[Slot] = []
    number = 0
    try:
        while rows:
            if ctx.stopped:
                return
            if node is not None and ctx.fleet.launcher(node).lost:  # what is left stays unrun
                queue += [item for item in rows if item[2] is not None]
                break
            engine, precision, point = rows.pop(0)
            slot = _load(work, engine, precision, point, node)
            if slot is not None:
                group.append(slot)
                group += _copies(work, slot, engine, precision, point, node)
            if any(s.row_key() != REFERENCE_KEY for s in group) and rows and memory_low():
                ctx.log(f"  memory: {len(group)} runner(s) loaded fill it; timing them as group {number + 1} first")
                _time_group(work, group, number, node, keep_reference=True)
                number += 1
                group = [s for s in group if s.row_key() == REFERENCE_KEY]
        if group:
            _time_group(work, group, number, node, keep_reference=False)
    except BaseException:  # Ctrl-C: no runner is left loaded; the rows not finished are not saved
        for slot in group:
            if slot.session.result is None:
                slot.session.abort(RunResult(slot.session.engine.id, "failed", reason="interrupted"))
        raise


def is_reference(item: tuple) -> bool:
    engine, precision, point = item
    return engine.id == REFERENCE and precision == "fp32" and (point is None or point.label() == "")


def _copies(work: Any, first: Slot, engine: Any, precision: str, point: Any, node: Any) -> List[Slot]:
    """The row's further processes (--processes; two for the reference at least), loaded as its
    first was. One that fails to load is left out: the row is timed in the processes that loaded."""
    wanted = work.ctx.cfg.rounds.processes
    if first.row_key() == REFERENCE_KEY:
        wanted = max(wanted, REFERENCE_PROCESSES)
    copies = []
    for k in range(2, wanted + 1):
        slot = _load(work, engine, precision, point, node, copy=k)
        if slot is not None:
            slot.row, slot.partner = first.row_key(), True
            copies.append(slot)
    return copies


def _load(work: Any, engine: Any, precision: str, point: Any, node: Any, copy: int = 1) -> Optional[Slot]:
    """Start the row's runner and wait until it is ready; a row that ends before (skipped,
    unsupported, failed at load) is added at once and None returned. `point` None: the partner.
    `copy` > 1: a further process of a row already loaded (no row of its own, whatever happens)."""
    ctx = work.ctx
    partner = point is None or copy > 1
    variant = "-".join(v for v in (PARTNER if point is None else "", f"process{copy}" if copy > 1 else "") if v)
    if point is None:
        from coordinator.run.points import Point

        point = Point()
    where = " ".join(p for p in (precision, point.label(), f"@{node.kind}" if node else "") if p)
    if node is None:
        work.progress.update(work.task, description=f"[bold]{engine.id}[/] at {where}: loading", refresh=True)
    launch = ctx.launch(engine, precision, point, variant=variant, node=node)
    if isinstance(launch, Row):  # skipped: nothing to load
        if not partner:
            _add(work, ctx.on_node(launch, node))
        return None
    if not ctx.console_is_terminal or node is not None:
        ctx.log(f"  {engine.id:<9} {where:<5} loading" + (f" (process {copy})" if copy > 1 else
                                                               " (the reference, to pair with)" if partner else ""))
    started = time.time()
    if not launch.launcher.resident:  # runs alone, in its own window
        try:
            result = launch.launcher.run(engine, launch.spec, launch.io_dir, ctx.cfg.execution.timeout)
        except Exception as e:
            result = launcher_failed(engine, launch.launcher, e)
        _add(work, ctx.on_node(ctx.finish(launch, result, started, node), node),
             note="sequential: its launcher cannot keep it loaded")
        return None
    # the row's budget in timed seconds is the rounds' (an engine that can tell one call will outlast
    # it, untuned TVM on a detector, ends the row at once rather than hold every round)
    launch.spec = launch.spec.replace(max_time_s=ctx.cfg.rounds.rounds_budget)
    try:
        session = launch.launcher.start(engine, launch.spec, launch.io_dir, ctx.cfg.execution.timeout)
    except Exception as e:
        _end(work, launch, launcher_failed(engine, launch.launcher, e), started, node, partner)
        return None
    try:
        ready = session.ready()
    except BaseException as e:  # no answer in time, or Ctrl-C
        result = session.abort(RunResult(engine.id, "timeout", stage=current_stage(launch.io_dir), reason=(
            f"not ready after {ctx.cfg.execution.timeout:.0f} s; the runner was killed "
            "(raise --timeout if it needs longer)")))
        if not isinstance(e, Exception):
            raise
        _end(work, launch, result, started, node, partner)
        return None
    if ready is None:  # it ended first: its result says why
        _end(work, launch, session.finish(""), started, node, partner)
        return None
    key = REFERENCE_KEY if is_reference((engine, precision, point)) else f"{engine.id} {where}"
    slot = Slot(key + (f" #{copy}" if copy > 1 else ""), session, float(ready.get("per_call_ms") or 1.0), copy=copy)
    slot.launch, slot.started, slot.partner = launch, started, partner
    return slot


def _time_group(work: Any, group: List[Slot], number: int, node: Any, keep_reference: bool) -> None:
    """The rounds of one group, then each runner ended and its row added. With `keep_reference`
    the reference stays loaded for the next group (its row is made in its first group only)."""
    ctx, cfg = work.ctx, work.ctx.cfg
    reference = REFERENCE_KEY if any(s.key == REFERENCE_KEY for s in group) else None
    rows = {s.row_key() for s in group}  # the budget is per row, whatever its processes
    plan = Plan(inputs=ctx.data.info.count or 1, slice_s=cfg.rounds.slice_time, target=cfg.rounds.target_ratio,
                budget_s=cfg.rounds.rounds_budget * len(rows), calls=cfg.timing.iterations, reference=reference)
    title = f"{len(rows)} row(s) in rounds" + (f" (group {number + 1})" if number else "") + \
        (f" @{node.kind} ({node.label()})" if node else "")

    def progress(text: str) -> None:
        if node is None:
            work.progress.update(work.task, description=f"[bold]{title}[/]: {text}", refresh=True)
        if not ctx.console_is_terminal or node is not None:
            ctx.log(f"  {title}: {text}")

    figures = run_rounds(group, plan, progress, stopped=lambda: ctx.stopped)
    for slot in group:
        if keep_reference and slot.row_key() == REFERENCE_KEY:  # timed again with the next group
            slot.kept = slot.kept or figures.get(slot.row_key())  # its row's figures: its first group's
            slot.values, slot.waits, slot.settles, slot.calls, slot.timed_s = [], [], [], 0, 0.0
            continue
        _finish_slot(work, slot, slot.kept or figures.get(slot.row_key()), number, node)


def _finish_slot(work: Any, slot: Slot, figures: Any, group: int, node: Any) -> None:
    ctx, launch = work.ctx, slot.launch
    if slot.error is not None:
        result = slot.session.abort(RunResult(launch.engine.id, "failed", stage="run", reason=(
            f"during the interleaved rounds: {type(slot.error).__name__}: {one_line(slot.error)}")))
    else:
        result = slot.session.finish(figures.stop if figures else "budget")
    if slot.partner:
        return
    ok = figures is not None and result.status == "ok" and result.latency_ms is not None
    if ok and figures.p50_ms is not None:  # the row's p50 is its figure over rounds, before anything reads it
        result.latency_ms.p50 = figures.p50_ms.value
        result.latency_ms.p50_ci95 = [figures.p50_ms.low, figures.p50_ms.high] if figures.p50_ms.known() else []
    row = ctx.finish(launch, result, slot.started, node)
    if ok and row.status == "ok":
        figures.group = group if slot.kept is None else 0
        row.rounds = figures
        row.noisy = figures.paired_spread > ctx.cfg.timing.cv_threshold
    _add(work, ctx.on_node(row, node))


def _end(work: Any, launch: Any, result: RunResult, started: float, node: Any, partner: bool) -> None:
    """A row that ended before the rounds: added as it is (a partner adds none)."""
    if not partner:
        _add(work, work.ctx.on_node(work.ctx.finish(launch, result, started, node), node))


def _add(work: Any, row: Row, note: str = "") -> None:
    if note:
        row.schedule = note
    work.add(row, f"  {row.engine:<9} {row.where():<5} {row.status:<11} {row.summary()}")

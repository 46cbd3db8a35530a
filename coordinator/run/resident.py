"""The interleaved schedule of one machine: load every row's runner (as many as memory holds),
time them together in rounds (`interleave.py`), then end each runner and make its row.

Rows load one at a time, nothing else timed meanwhile: a runner converts, compiles, warms up
and takes its parity outputs, says ready, and waits. When available memory falls under a
margin the rows loaded so far are timed as a group and ended before more load; every later
group loads the reference again, so that each group's ratios are to the same reference.
"""
import time
from typing import Any, Dict, List, Optional

from shared.result import RunResult

from ..engines import REFERENCE
from ..launchers.process import current_stage
from ..report import Row
from .interleave import Plan, Slot, run_rounds
from .launch import launcher_failed

# Stop loading more rows into a group when available memory would fall under this share of it.
MEMORY_MARGIN = 0.15
MEMORY_MARGIN_MIN_BYTES = 2 << 30


def memory_low() -> bool:
    import psutil

    vm = psutil.virtual_memory()
    return vm.available < max(MEMORY_MARGIN * vm.total, MEMORY_MARGIN_MIN_BYTES)


def run_interleaved(work: Any, queue: list) -> None:
    """Every (engine, precision, point) of `queue`, interleaved; rows added to the report as they end."""
    ctx = work.ctx
    rows = sorted(queue, key=lambda item: not _is_reference(item))  # the reference loads first
    queue.clear()
    group: List[tuple] = []  # (slot, launch, started)
    number = 0
    try:
        for k, (engine, precision, point) in enumerate(rows):
            if ctx.stopped:
                return
            loaded = _load(work, engine, precision, point)
            if loaded is not None:
                group.append(loaded)
            if group and k + 1 < len(rows) and memory_low():
                ctx.log(f"  memory: {len(group)} runner(s) loaded fill it; timing them as group {number + 1} first")
                _time_group(work, group, number, keep_reference=True)
                number += 1
                group = [g for g in group if g[0].key == REFERENCE_KEY]
        if group:
            _time_group(work, group, number, keep_reference=False)
    except BaseException:  # Ctrl-C: no runner is left loaded; the rows not finished are not saved
        for slot, _, _ in group:
            if slot.session.result is None:
                slot.session.abort(RunResult(slot.session.engine.id, "failed", reason="interrupted"))
        raise


REFERENCE_KEY = f"{REFERENCE} fp32"


def _is_reference(item: tuple) -> bool:
    engine, precision, point = item
    return engine.id == REFERENCE and precision == "fp32" and point.label() == ""


def _load(work: Any, engine: Any, precision: str, point: Any) -> Optional[tuple]:
    """Start the row's runner and wait until it is ready; a row that ends before (skipped,
    unsupported, failed at load) is added at once and None returned."""
    ctx = work.ctx
    where = " ".join(p for p in (precision, point.label()) if p)
    work.progress.update(work.task, description=f"[bold]{engine.id}[/] at {where}: loading", refresh=True)
    if not ctx.console_is_terminal:
        ctx.log(f"  {engine.id:<9} {where:<5} loading")
    launch = ctx.launch(engine, precision, point)
    if isinstance(launch, Row):
        work.add(launch, f"  {engine.id:<9} {where:<5} {launch.status:<11} {launch.summary()}")
        return None
    started = time.time()
    if not launch.launcher.resident:  # runs alone, in its own window
        try:
            result = launch.launcher.run(engine, launch.spec, launch.io_dir, ctx.cfg.timeout)
        except Exception as e:
            result = launcher_failed(engine, launch.launcher, e)
        _add(work, ctx.finish(launch, result, started), note="sequential: its launcher cannot keep it loaded")
        return None
    try:
        session = launch.launcher.start(engine, launch.spec, launch.io_dir, ctx.cfg.timeout)
    except Exception as e:
        _add(work, ctx.finish(launch, launcher_failed(engine, launch.launcher, e), started))
        return None
    try:
        ready = session.ready()
    except BaseException as e:  # no answer in time, or Ctrl-C
        result = session.abort(RunResult(engine.id, "timeout", stage=current_stage(launch.io_dir), reason=(
            f"not ready after {ctx.cfg.timeout:.0f} s; the runner was killed (raise --timeout if it needs longer)")))
        if not isinstance(e, Exception):
            raise
        _add(work, ctx.finish(launch, result, started))
        return None
    if ready is None:  # it ended first: its result says why
        _add(work, ctx.finish(launch, session.finish(""), started))
        return None
    key = REFERENCE_KEY if _is_reference((engine, precision, point)) else f"{engine.id} {where}"
    return Slot(key, session, float(ready.get("per_call_ms") or 1.0)), launch, started


def _time_group(work: Any, group: List[tuple], number: int, keep_reference: bool) -> None:
    """The rounds of one group, then each runner ended and its row added. With `keep_reference`
    the reference stays loaded for the next group (its row is made in its first group only)."""
    ctx, cfg = work.ctx, work.ctx.cfg
    slots = [slot for slot, _, _ in group]
    reference = REFERENCE_KEY if any(s.key == REFERENCE_KEY for s in slots) else None
    plan = Plan(inputs=ctx.data.info.count or 1, slice_s=cfg.slice_time, target=cfg.target_ratio,
                budget_s=cfg.max_time * len(slots), calls=cfg.iterations, reference=reference)
    title = f"{len(slots)} row(s) in rounds" + (f" (group {number + 1})" if number else "")

    def progress(text: str) -> None:
        work.progress.update(work.task, description=f"[bold]{title}[/]: {text}", refresh=True)
        if not ctx.console_is_terminal:
            ctx.log(f"  {text}")

    figures = run_rounds(slots, plan, progress, stopped=lambda: ctx.stopped)
    for slot, launch, started in group:
        if keep_reference and slot.key == REFERENCE_KEY:  # timed again with the next group
            slot.kept = slot.kept or figures.get(slot.key)  # its row's figures: its first group's
            slot.values, slot.waits, slot.settles, slot.calls, slot.timed_s = [], [], [], 0, 0.0
            continue
        _finish_slot(work, slot, launch, started, slot.kept or figures.get(slot.key), number)


def _finish_slot(work: Any, slot: Slot, launch: Any, started: float, figures: Any, group: int) -> None:
    ctx = work.ctx
    if slot.error is not None:
        result = slot.session.abort(RunResult(launch.engine.id, "failed", stage="run", reason=(
            f"during the interleaved rounds: {type(slot.error).__name__}: {' '.join(str(slot.error).split())[:300]}")))
    else:
        result = slot.session.finish(figures.stop if figures else "budget")
    row = ctx.finish(launch, result, started)
    if figures is not None and row.status == "ok":
        figures.group = group if slot.kept is None else 0
        row.rounds = figures
        row.noisy = figures.paired_spread > ctx.cfg.cv_threshold
        if row.latency_ms is not None and figures.p50_ms is not None:  # the row's p50: the median over rounds
            row.latency_ms.p50 = figures.p50_ms.value
            row.latency_ms.p50_ci95 = [figures.p50_ms.low, figures.p50_ms.high] if figures.p50_ms.known() else []
    _add(work, row)


def _add(work: Any, row: Any, note: str = "") -> None:
    if note:
        row.settings["schedule"] = note
    work.add(row, f"  {row.engine:<9} {row.where():<5} {row.status:<11} {row.summary()}")

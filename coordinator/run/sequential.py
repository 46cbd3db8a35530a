"""Rows run one after the other (`--schedule sequential`, or an engine that cannot stay loaded),
here or on a fleet node (one thread per node, taking rows from its kind's queue). A row may add
rows to its queue: its tuned variant (--tune) and the next concurrency of --concurrency auto.
`Work` is also what the interleaved schedule adds its rows through."""
import contextlib
from typing import Any, Dict, Optional

from rich.progress import Progress

from coordinator.launchers.ray.cluster import Node
from coordinator.report.document import Row, row_key
from coordinator.run import fleet as fleet_rows
from coordinator.run.points import grown
from coordinator.run.progress import watch_progress
from coordinator.run.save import save
from coordinator.run.tuning import TUNED, tune


class Work:
    def __init__(self, ctx: Any, progress: Progress, task: Any, done: set) -> None:
        self.ctx, self.progress, self.task, self.done = ctx, progress, task, done
        self.lock = ctx.lock
        self.best: Dict[tuple, float] = {}  # --concurrency auto: its best samples/s so far per row group

    def drain(self, queue: list, node: Optional[Node] = None) -> None:
        ctx = self.ctx
        kind = node.kind if node else ""
        while not ctx.stopped and not fleet_rows.lost(ctx.fleet, node):
            with self.lock:
                if not queue:
                    return
                engine, precision, point = queue.pop(0)
            where = " ".join(p for p in (precision, point.label(), f"@{kind}" if kind else "") if p)
            row = self._one(engine, precision, point, node, where)
            if ctx.stopped:  # interrupted meanwhile: the row is not whole
                return
            self.add(row, f"  {engine.id:<9} {where:<5} {row.status:<11} {row.summary()}")
            tuned_key = row_key(engine.id, precision, point, TUNED, kind)
            if ctx.cfg.tuning.tune and row.status == "ok" and tuned_key not in self.done:
                tuned = tune(ctx, engine, precision, point, node=node)
                if tuned is not None and not ctx.stopped:
                    self.add(tuned, f"  {engine.id:<9} {where} tuned {tuned.status:<11} {tuned.summary()}", count=False)
            self._grow(queue, row, engine, precision, point, kind)
            self.progress.refresh()

    def _one(self, engine: Any, precision: str, point: Any, node: Optional[Node], where: str) -> Row:
        """The row run whole, its progress shown live here (a fleet row: one line at its start)."""
        ctx, title = self.ctx, f"[bold]{engine.id}[/] at {where}"
        if node is None:  # the fleet's rows run side by side: one line each, no live description
            self.progress.update(self.task, description=title, refresh=True)
        if not ctx.console_is_terminal or node is not None:
            ctx.log(f"  {engine.id:<9} {where:<5} started")
        live = watch_progress(ctx.io_dir(engine, precision, point, machine=node.kind if node else ""),
                              lambda text: self.progress.update(self.task, description=f"{title}: {text}", refresh=True))
        with live if node is None else contextlib.nullcontext():
            return ctx.run(engine, precision, point, node=node)

    def _grow(self, queue: list, row: Row, engine: Any, precision: str, point: Any, kind: str) -> None:
        """--concurrency auto: the next concurrency of this row's group, while it still gains."""
        with self.lock:
            group = (kind, engine.id, precision, point.scenario, point.batch)
            more = grown(point, row.throughput_per_s if row.status == "ok" else None, self.best.get(group))
            if row.status == "ok" and row.throughput_per_s and more is not None:
                self.best[group] = max(self.best.get(group, 0.0), row.throughput_per_s)
            if more is not None and row_key(engine.id, precision, more, "", kind) not in self.done:
                queue.insert(0, (engine, precision, more))
                self.progress.update(self.task, total=self.progress.tasks[0].total + 1)

    def add(self, row: Row, line: str, count: bool = True) -> None:
        """A finished row into the report, saved at once: nothing measured is lost."""
        with self.lock:
            self.ctx.report.results.append(row)
            save(self.ctx.report, self.ctx.run_dir, views=False)
            if count:
                self.progress.advance(self.task)
        self.ctx.log(line)

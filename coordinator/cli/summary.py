"""Terminal views: the summary table after a bench, availability for `e2e engines`."""
from typing import Mapping

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from coordinator.engines import Engine, skip_reason
from coordinator.launchers import AUTO, Launcher, choose
from coordinator.report.document import Report


def summary_table(report: Report) -> Table:
    fault = report.fault_headline()  # first: the rows it names are broken on purpose
    table = Table(title=(f"[bold red]{escape(fault)}[/]\n" if fault else "") +
                  f"e2e: {escape(report.model.name)} on {report.setup.setting('device')}, "
                  f"{report.setup.setting('threads')} threads", title_justify="left")
    scored = any(r.accuracy for r in report.results)
    columns = ["engine", "precision", "launcher", "status", "p50 ms", "±95%", "p99 ms", "vs torch", "parity"]
    for col in columns + (["accuracy"] if scored else []) + ["note"]:
        table.add_column(col, justify="right" if col.endswith(("ms", "torch", "%")) else "left",
                         overflow="fold", max_width=60 if col == "note" else None)
    colors = {"ok": "green", "skipped": "dim", "unsupported": "yellow", "failed": "red", "timeout": "red"}
    for r in report.rows():
        lat, speedup = r.latency_ms, report.speedup(r)
        cells = [r.engine, r.where(), r.launcher, f"[{colors[r.status]}]{r.status}[/]",
                 f"{lat.p50:.2f}" if lat else "", r.ci_text() if lat else "", f"{lat.p99:.2f}" if lat else "",
                 r.speedup_text() or (f"{speedup:.2f}x" if speedup else ""), r.verdict()]
        if scored:
            cells.append(Text(f"{r.accuracy.metric} {r.accuracy.value:.4f}" if r.accuracy else ""))
        table.add_row(*cells, Text(r.note()))  # engine messages are not markup
    return table


def availability(engine: Engine, device: str, launchers: Mapping[str, Launcher], requested: str = AUTO) -> str:
    """Where the engine would run with --launcher `requested` (as `e2e bench` chooses), or why
    it cannot run here."""
    reason = skip_reason(engine, device, engine.precisions[0])
    if reason is None:
        launcher, reason = choose(engine, requested, device, launchers)
        if reason is None and launcher is not None:
            kind = "cpu" if device == "cpu" else "cuda"
            untested = "" if kind in engine.verified else f"; [yellow]e2e's tests have never run it on {kind}[/]"
            return f"[green]yes[/] ({launcher.name}){untested}"
    return f"[dim]{escape(str(reason))}[/]"


def verified(engine: Engine) -> str:
    """The devices e2e's tests have run the engine on; "never" in red: its rows are untested code."""
    return engine.verified_text if engine.verified else f"[red]{engine.verified_text}[/]"

"""The `e2e` command: parse, build the config, call the coordinator. Nothing else lives here."""
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from coordinator.config import BenchConfig
from coordinator.cli.console import console, state, user_errors

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Export a PyTorch model to ONNX once, run it on every engine, report.")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory (holding report.json).")]) -> None:
    """Regenerate the views (results.csv, report.md, report.html) from report.json."""
    from coordinator.report.document import load_report
    from coordinator.report.views import SOURCE, registry, write_report

    with user_errors():
        loaded = load_report(run_dir)
        write_report(loaded, run_dir if run_dir.is_dir() else run_dir.parent)
    console.print(f"Wrote {run_dir}/{', '.join(f for f in registry() if f != SOURCE)}", markup=False)


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="The earlier run directory.")],
    run_b: Annotated[Path, typer.Argument(help="The later run directory.")],
    threshold: Annotated[float, typer.Option(
        help="A p50 slower by more than this fraction, and significantly (95% interval), is a regression.")] = 0.10,
) -> None:
    """Per-engine latency and parity changes from RUN_A to RUN_B; exit 1 on a regression."""
    from rich.text import Text

    from coordinator.report.compare import compare_runs, differences
    from coordinator.report.document import load_report

    with user_errors():
        a, b = load_report(run_a), load_report(run_b)
    changes = compare_runs(a, b, threshold)
    out = Console(width=None if sys.stdout.isatty() else 160)
    for line in differences(a, b):
        out.print(Text("warning: " + line, style="yellow"))
    table = Table("engine", "precision", "status", "p50 A ms", "p50 B ms", "change [95% CI]", "vs torch A -> B",
                  "parity", "regression")
    for c in changes:
        change = "" if c.p50_change is None else f"{c.p50_change:+.1%}"
        if c.ratio_ci:
            change += f" [{c.ratio_ci[0] - 1:+.1%}, {c.ratio_ci[1] - 1:+.1%}]"
        relative = ""
        if c.relative_ci:  # both interleaved: judged by the time relative to the reference
            relative = (f"{c.speedup_a:.2f}x -> {c.speedup_b:.2f}x (time {c.relative_change:+.1%} "
                        f"[{c.relative_ci[0] - 1:+.1%}, {c.relative_ci[1] - 1:+.1%}])")
        table.add_row(c.engine, c.precision, c.status_a if c.status_a == c.status_b else f"{c.status_a} -> {c.status_b}",
                      "" if c.p50_a is None else f"{c.p50_a:.2f}", "" if c.p50_b is None else f"{c.p50_b:.2f}",
                      Text(f"{change}, {c.note}" if c.note else change), Text(relative),
                      c.parity_a if c.parity_a == c.parity_b else f"{c.parity_a} -> {c.parity_b}",
                      Text(c.regression, style="bold red"))
    out.print(table)
    if any(c.regression for c in changes):
        raise typer.Exit(1)


def _add_subcommands() -> None:
    from coordinator.cli.bench import bench
    from coordinator.cli.cache import app as cache_app
    from coordinator.cli.explain import explain
    from coordinator.cli.images import app as images_app
    from coordinator.cli.setup import setup

    app.command()(bench)
    app.command()(setup)
    app.command()(explain)
    app.add_typer(images_app, name="images")
    app.add_typer(cache_app, name="cache")


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    state["debug"] = debug


@app.command("engines")
def list_engines(
    device: Annotated[Optional[str], typer.Option(help="Check for this device [default: as bench].")] = None,
) -> None:
    """List the engines and whether each can run here, and why not."""
    from coordinator.engines import discover
    from coordinator.launchers import LaunchSettings, create_all
    from coordinator.cli.summary import availability, verified

    with user_errors():
        cfg = BenchConfig.of(model="-", device=device).resolved()
    launchers = create_all(LaunchSettings(cfg.execution.cache_dir, cfg.execution.memory_limit))
    # verified: the devices e2e's tests have run the engine on ("never": written, never run)
    table = Table("engine", "name", "devices", "verified", "precisions", "environments")
    table.add_column("here", overflow="fold")
    for engine in discover().values():
        table.add_row(engine.id, engine.name, ", ".join(engine.devices), verified(engine),
                      ", ".join(engine.precisions), ", ".join(engine.environments),
                      availability(engine, cfg.execution.device or "cpu", launchers))
    Console(width=None if sys.stdout.isatty() else 160).print(table)


_add_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":  # `python -m coordinator.cli.app`, as the entry point `e2e` does
    main()

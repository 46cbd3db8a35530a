"""`e2e images build|list`: the runner images, from docker-bake.hcl."""
import contextlib
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from coordinator.cli.console import console, user_errors

app = typer.Typer(no_args_is_help=True, help="Build and list the runner images (docker-bake.hcl).")


@app.command()
def build(
    engines: Annotated[Optional[List[str]], typer.Argument(help="Targets or groups [default: all].")] = None,
    ca_cert: Annotated[Optional[Path], typer.Option(help="A PEM file pip must trust during the build (TLS proxy).")] = None,
    sources: Annotated[Optional[Path], typer.Option(
        help="A folder of source archives for images built from source (openppl), instead of downloading them.")] = None,
    log: Annotated[Optional[Path], typer.Option(help="Write every line of the builds' output to this file too.")] = None,
) -> None:
    """Build the images with Docker's classic builder (no buildx needed), dependencies first."""
    from coordinator.images import build as images

    with user_errors(), Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                 console=console, transient=True) as progress, \
            (open(log, "a", encoding="utf-8", buffering=1) if log else contextlib.nullcontext()) as log_file:
        def on_line(target: str, line: str) -> None:
            progress.update(task, description=f"{target}: {line[:100]}")
            if log_file is not None:
                log_file.write(f"{target}: {line}\n")

        task = progress.add_task("starting", total=None)
        outcomes = images.build(engines or [], ca_cert, log=lambda m: progress.console.print(m, markup=False),
                                on_line=on_line, sources=sources)
    table = Table("image", "result", "seconds")
    table.add_column("last line / error", overflow="fold")
    for o in outcomes:
        table.add_row(o.tag, "[green]built[/]" if o.ok else "[red]FAILED[/]", f"{o.seconds:.0f}", o.message)
    Console().print(table)
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


@app.command("list")
def list_() -> None:
    """Each image: tag, built or not (stale: built from other runner code than this checkout), size, the pinned engine version."""
    from coordinator.images import build as images

    with user_errors():
        rows = images.list_images()
    table = Table("target", "tag", "built", "size MB", "created", "pinned")
    for r in rows:
        table.add_row(r["target"], r["tag"], r["built"], "" if r["size_mb"] is None else str(r["size_mb"]),
                      r["created"], r["pinned"])
    Console().print(table)

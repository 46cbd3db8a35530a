"""`e2e setup`: make the engine environments ahead of time (CI, images), sized first, a few at
once, one progress line each."""
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from coordinator.config import default_cache
from coordinator.cli.console import console, user_errors


def setup(
    engines: Annotated[str, typer.Option(help="`all` or a comma list of engine ids.")] = "all",
    device: Annotated[str, typer.Option(help="The device the engines will run on (cpu or cuda).")] = "cpu",
    launcher: Annotated[str, typer.Option(help="As bench's --launcher: only virtualenv engines get one.")] = "auto",
    cache_dir: Annotated[Optional[Path], typer.Option(
        help="The cache [default: $E2E_CACHE_DIR or ~/.cache/e2e].")] = None,
) -> None:
    """Make the virtualenvs that `e2e bench --engines ...` would make, ahead of time."""
    from coordinator import engines as registry
    from coordinator.run.environments import WORKERS, check_space, folder_mb, make, needed, plan
    from coordinator.launchers import LaunchSettings, create_all

    cache = (cache_dir or default_cache()).absolute()
    with user_errors():
        selected = registry.select(engines)
        launchers = create_all(LaunchSettings(cache, None, lambda _: None))
        wanted = needed(selected, launcher, device, cache, launchers)
        planned = plan(wanted, cache)
        check_space(planned, cache)
    if not planned:  # `e2e engines` says why an engine needs none here (its image, no GPU, ...)
        console.print(f"{len(wanted)} environment(s) needed here, all made already, in {cache / 'venvs'}"
                      if wanted else "None of these engines runs in a virtualenv here (see `e2e engines`).",
                      markup=False)
        return
    lines = []
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} MB"),
               TextColumn("{task.fields[packages]} packages"), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        tasks = {p.engine.id: progress.add_task(p.engine.id, total=p.mb, packages=0) for p in planned}
        futures = make(launchers["venv"], planned, lines.append, WORKERS)  # type: ignore[arg-type]
        done = threading.Event()

        def watch() -> None:  # sizes so far: the bytes of each folder against its estimate
            while not done.wait(2.0):
                for p in planned:
                    if not futures[p.engine.id].done():
                        progress.update(tasks[p.engine.id], completed=min(folder_mb(p.folder), p.mb),
                                        packages=sum(1 for _ in p.folder.glob("lib/python*/site-packages/*.dist-info")))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        failed = []
        for p in planned:
            try:
                futures[p.engine.id].result()
                progress.update(tasks[p.engine.id], completed=p.mb, description=f"{p.engine.id} ready")
            except Exception:  # its line says why
                failed.append(p.engine.id)
                progress.update(tasks[p.engine.id], description=f"{p.engine.id} FAILED")
        done.set()
    for line in lines:
        console.print(line, markup=False, highlight=False)
    if failed:
        console.print(f"[bold red]error:[/] {len(failed)} environment(s) could not be made: {', '.join(failed)} "
                      "(their logs are beside them in the cache)", highlight=False)
        raise typer.Exit(1)

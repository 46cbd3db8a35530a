"""`e2e cache list|clear`: what the cache holds (exports, inputs, environments, converted models,
tuning records), with sizes and ages, and pruning it."""
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from coordinator.config import default_cache
from coordinator.cli.console import console, user_errors

app = typer.Typer(no_args_is_help=True, help="See and prune the cache (exports, inputs, environments, engines, tuning).")

CacheDir = Annotated[Optional[Path], typer.Option(help="The cache [default: $E2E_CACHE_DIR or ~/.cache/e2e].")]


@app.command("list")
def list_(cache_dir: CacheDir = None) -> None:
    """Each entry: kind, size (and the part shared by hard links), age (since made or last used),
    an environment's largest package, and whether it is whole."""
    from coordinator.cache import entries, on_disk

    cache = (cache_dir or default_cache()).absolute()
    with user_errors():
        found = entries(cache)
    table = Table("kind", "entry", "size MB", "shared", "age", title=str(cache))
    table.add_column("state", overflow="fold")
    for e in found:
        table.add_row(e.kind, e.name, f"{e.bytes / 1e6:.1f}", f"{e.shared / 1e6:.1f}" if e.shared else "",
                      _age(e.age_s), e.state + (f"; largest: {e.largest}" if e.largest else ""))
    Console(width=None if console.is_terminal else 180).print(table)
    # shared: in files hard-linked from uv's cache or another environment, stored once
    console.print(f"{len(found)} entries, {sum(e.bytes for e in found) / 1e6:.1f} MB listed, "
                  f"{on_disk([e.path for e in found]) / 1e6:.1f} MB on disk (hard links counted once)", markup=False)


@app.command()
def clear(
    kinds: Annotated[Optional[List[str]], typer.Argument(
        help="models, data, venvs, uv, engines, tuning, protocol, partial [default: all].")] = None,
    older_than: Annotated[Optional[str], typer.Option(help="Only entries unused for this long: 7d, 12h, 30m.")] = None,
    cache_dir: CacheDir = None,
) -> None:
    """Remove cache entries (all, or those of KINDS unused for --older-than); one a run is making now stays."""
    from coordinator.cache import clear as clear_cache, parse_age

    cache = (cache_dir or default_cache()).absolute()
    with user_errors():
        removed = clear_cache(cache, parse_age(older_than) if older_than else None, kinds or [])
    for e in removed:
        console.print(f"removed {e.kind:<8} {e.name} ({e.bytes / 1e6:.1f} MB)", markup=False, highlight=False)
    console.print(f"{len(removed)} entries removed, {sum(e.bytes for e in removed) / 1e6:.1f} MB freed", markup=False)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"

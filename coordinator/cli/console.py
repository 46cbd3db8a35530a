"""What every CLI command shares: the message console, the --debug state, and `user_errors`,
which turns a known error into one line and an exit status."""
from contextlib import contextmanager
from typing import Iterator

import typer
from rich.console import Console
from rich.markup import escape

from shared.errors import E2EError

from coordinator.errors import DISK_FULL, disk_full

console = Console(stderr=True, soft_wrap=True)  # messages; tables go to stdout
state = {"debug": False}  # set by the root command's --debug


@contextmanager
def user_errors() -> Iterator[None]:
    """Known errors end in one line and a non-zero exit; a traceback only with --debug."""
    try:
        yield
    except E2EError as e:
        if state["debug"]:
            raise
        console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        raise typer.Exit(1) from None
    except OSError as e:  # a full disk while writing the cache or the run: one line too
        if e.errno not in DISK_FULL or state["debug"]:
            raise
        console.print(f"[bold red]error:[/] {escape(disk_full(e))}: free some space (`e2e cache clear "
                      "--older-than 7d` prunes the cache) or give another --cache-dir / --out", highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("interrupted: the rows finished so far are in the report")
        raise typer.Exit(130) from None

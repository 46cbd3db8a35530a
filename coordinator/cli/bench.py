"""`e2e bench`: its options are made from the fields of `BenchConfig`'s sections (name, type, help,
default), so an option is declared once, in coordinator/config/sections.py; this module only turns
them into Typer parameters."""
import inspect
import signal
import sys
import typing
from dataclasses import MISSING, Field
from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from coordinator.cli.console import console, user_errors
from coordinator.config import BenchConfig, resolve
from coordinator.config.bench import OPTIONS, Option
from coordinator.errors import UsageError

COMMAND_ONLY = ("config", "resume")  # options of the command, not of the configuration


def bench(**options: Any) -> None:
    """Benchmark a model on engines and write a report."""
    config, resume = (options.pop(name) for name in COMMAND_ONLY)
    given = {k: v for k, v in options.items() if v is not None and v != []}
    with user_errors():
        if resume is not None:
            _resume(resume.absolute(), set(given))
        else:
            _bench(resolve(given, config.absolute() if config else None))


def _parameter(name: str, o: Option) -> inspect.Parameter:
    """An option as a Typer parameter. Every option defaults to None, meaning "not given": the
    default shown is the field's, applied by `resolve` after the config file."""
    f, hint = o.field, o.hint
    inner = [a for a in typing.get_args(hint) if a is not type(None)]
    plain = inner[0] if typing.get_origin(hint) is typing.Union else hint
    if name == "engine_options":  # the one repeatable option
        cli_type: Any = List[str]
    elif typing.get_origin(plain) in (list, tuple):  # comma lists and HxW: strings, read by the config
        cli_type = str
    else:
        cli_type = plain
    default = f.metadata.get("shown") or _default_text(f)
    flags = f.metadata.get("flags") or ("--" + name.replace("_", "-"),)
    text = f.metadata["help"] + (f" [default: {default}]" if default else "")
    # Typer's help is rich markup; --help lists the options by section, as a nested config file names them
    option = typer.Option(*flags, help=escape(text), show_default=False, rich_help_panel=o.section)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[Optional[cli_type], option])


def _default_text(f: Field) -> str:
    value = f.default_factory() if f.default_factory is not MISSING else f.default  # type: ignore[misc]
    if value is MISSING or value is None or value == []:
        return ""
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


bench.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [_parameter(name, o) for name, o in OPTIONS.items()] + [
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
            Optional[Path], typer.Option(help="YAML or JSON file of these options (names as the options', - or _; "
                                              "--precision is precisions), flat or nested by section (model: "
                                              "{name: resnet18}, timing: {warmup: 2}); options on the command "
                                              "line win.")]),
        inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
            Optional[Path], typer.Option(help="An interrupted run directory: run its missing engines with its "
                                              "own settings.")]),
    ])


def _resume(run_dir: Path, given: set) -> None:
    from coordinator.report.document import load_report

    if given:
        flags = sorted("--" + name.replace("_", "-") for name in given)
        raise UsageError(f"--resume runs with the run's own settings; drop {', '.join(flags)}")
    report = load_report(run_dir)
    if report.setup.config is None:
        raise UsageError(f"{run_dir}: report.json has no saved settings (made by an older e2e): cannot resume")
    _bench(report.setup.config.at(run_dir).resolved(), report)


def _bench(cfg: BenchConfig, resume: Any = None) -> None:
    from coordinator.run.bench import bench as run_bench
    from coordinator.cli.exit_status import exit_status
    from coordinator.cli.summary import summary_table
    from coordinator.report.verdict import decide

    # SIGTERM (a CI job cancelled, `docker stop`, `kill`) ends the run as Ctrl-C does: the
    # running engine is stopped and what was measured is saved.
    signal.signal(signal.SIGTERM, _interrupt)
    report = run_bench(cfg, console, resume)
    # A pipe or a CI log has no width: don't squeeze the table into 80 columns.
    Console(width=None if sys.stdout.isatty() else 160).print(summary_table(report))
    for line in decide(report).lines():
        console.print(line, markup=False, highlight=False)
    console.print(f"Report: {report.run_dir}/report.html (report.md, report.json, results.csv, logs/)",
                  markup=False)
    code, why = exit_status(report, cfg.reporting.fail_on)
    if code:
        console.print(f"[bold red]error:[/] {escape(why)}", highlight=False)
        raise typer.Exit(code)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)

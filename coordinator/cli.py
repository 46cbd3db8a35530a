"""The `e2e` command: parse, build the config, call the coordinator. Nothing else lives here."""
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator, List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shared.errors import E2EError

from .config import BenchConfig, default_cache
from .errors import UsageError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Export a PyTorch model to ONNX once, run it on every engine, report.")
console = Console(stderr=True, soft_wrap=True)
state = {"debug": False}


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory (holding report.json).")]) -> None:
    """Regenerate results.csv, report.md and report.html from report.json."""
    from .report import load_report, write_report

    with user_errors():
        loaded = load_report(run_dir)
        write_report(loaded, run_dir if run_dir.is_dir() else run_dir.parent)
    console.print(f"Wrote {run_dir}/report.html, report.md, results.csv", markup=False)


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="The earlier run directory.")],
    run_b: Annotated[Path, typer.Argument(help="The later run directory.")],
    threshold: Annotated[float, typer.Option(
        help="A p50 slower by more than this fraction, and significantly (95% interval), is a regression.")] = 0.10,
) -> None:
    """Per-engine latency and parity changes from RUN_A to RUN_B; exit 1 on a regression."""
    from rich.text import Text

    from .compare import compare_runs, differences
    from .report import load_report

    with user_errors():
        a, b = load_report(run_a), load_report(run_b)
    changes = compare_runs(a, b, threshold)
    out = Console(width=None if sys.stdout.isatty() else 160)
    for line in differences(a, b):
        out.print(Text("warning: " + line, style="yellow"))
    table = Table("engine", "precision", "status", "p50 A ms", "p50 B ms", "change [95% CI]", "parity", "regression")
    for c in changes:
        change = "" if c.p50_change is None else f"{c.p50_change:+.1%}"
        if c.ratio_ci:
            change += f" [{c.ratio_ci[0] - 1:+.1%}, {c.ratio_ci[1] - 1:+.1%}]"
        table.add_row(c.engine, c.precision, c.status_a if c.status_a == c.status_b else f"{c.status_a} -> {c.status_b}",
                      "" if c.p50_a is None else f"{c.p50_a:.2f}", "" if c.p50_b is None else f"{c.p50_b:.2f}",
                      Text(f"{change}, {c.note}" if c.note else change),
                      c.parity_a if c.parity_a == c.parity_b else f"{c.parity_a} -> {c.parity_b}",
                      Text(c.regression, style="bold red"))
    out.print(table)
    if any(c.regression for c in changes):
        raise typer.Exit(1)


def _add_subcommands() -> None:
    from .cli_images import app as images_app

    app.add_typer(images_app, name="images")


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    state["debug"] = debug


@app.command()
def bench(
    ctx: typer.Context,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Zoo name, path/to/model.onnx, or package.module:factory.")] = None,
    engines: Annotated[str, typer.Option("--engines", "-e", help="'all' or a comma list (see `e2e engines`).")] = "all",
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda or cuda:N [default: cuda:0 if an NVIDIA GPU is visible, else cpu]")] = None,
    precision: Annotated[str, typer.Option(help="Comma list of fp32, fp16, bf16, int8.")] = "fp32",
    warmup: Annotated[int, typer.Option(help="Untimed calls before measuring, at most (every test input runs once for parity).")] = 5,
    warmup_time: Annotated[float, typer.Option(help="Seconds of untimed calls, at most.")] = 10.0,
    iterations: Annotated[Optional[int], typer.Option(help="A fixed count of timed calls [default: until the median is known to --target-ci].")] = None,
    min_time: Annotated[Optional[float], typer.Option(help="Seconds of timed calls, at least [default: 1, or 0 with --iterations].")] = None,
    max_time: Annotated[float, typer.Option(help="Seconds of timed calls per row, at most: the row's budget when the median is not known to --target-ci sooner.")] = 60.0,
    target_ci: Annotated[float, typer.Option(help="Stop once the 95% confidence interval of the median is within +- this fraction of it.")] = 0.01,
    repeats: Annotated[int, typer.Option(help="Timed loops per row; the report gives the spread of their medians.")] = 1,
    threads: Annotated[Optional[int], typer.Option(help="Threads for every engine [default: physical cores].")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory [default: runs/<time>-<model>].")] = None,
    weights: Annotated[str, typer.Option(help="'pretrained', 'random' (seeded) or a checkpoint path.")] = "pretrained",
    seed: Annotated[int, typer.Option(help="Seed for random weights.")] = 0,
    images: Annotated[Optional[Path], typer.Option(help="Folder of test images [default: shipped photos].")] = None,
    dataset: Annotated[Optional[Path], typer.Option(help="COCO annotations.json (detection) or a folder of class folders (classification): task accuracy per engine.")] = None,
    calibration: Annotated[Optional[Path], typer.Option(help="Folder of images int8 quantization calibrates on [default: the test inputs].")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Use the first N images of --dataset.")] = None,
    input_size: Annotated[Optional[str], typer.Option(help="HxW of the test inputs, e.g. 480x640.")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset of the export.")] = 17,
    timeout: Annotated[float, typer.Option(help="Seconds before an engine run is killed.")] = 1800.0,
    cv_threshold: Annotated[float, typer.Option(help="Flag rows whose latency coefficient of variation exceeds this as noisy.")] = 0.05,
    memory_limit: Annotated[Optional[int], typer.Option(help="MB per engine run: the container's limit [default: 80% of RAM], a virtualenv runner's address-space limit [default: none].")] = None,
    launcher: Annotated[str, typer.Option(help="auto (Docker when the image is built, else venv), venv or docker.")] = "auto",
    cache_dir: Annotated[Optional[Path], typer.Option(help="Cache for exports and environments [default: $E2E_CACHE_DIR or ~/.cache/e2e].")] = None,
    engine_option: Annotated[Optional[List[str]], typer.Option("--engine-option", "-o", help="ENGINE.KEY=VALUE, repeatable: a runner's own option (e.g. ort.graph_optimization_level=basic, tvm.specialise=false).")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML or JSON file of these options (names as here, - or _); options given on the command line win.")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="An interrupted run directory: run its missing engines with its own settings.")] = None,
    fail_on: Annotated[Optional[str], typer.Option(help="Comma list of row outcomes that make the exit status 4: failed, timeout, unsupported, skipped, parity, noisy, imprecise.")] = None,
) -> None:
    """Benchmark a model on engines and write a report."""
    given = {name for name in ctx.params if ctx.get_parameter_source(name).name == "COMMANDLINE"}
    options = dict(
        model=model, engines=engines, device=device, precisions=precision, warmup=warmup, warmup_time=warmup_time,
        iterations=iterations, min_time=min_time, max_time=max_time, target_ci=target_ci, fail_on=fail_on,
        repeats=repeats, threads=threads, out=out, weights=weights, seed=seed, images=images,
        dataset=dataset, calibration=calibration, limit=limit, input_size=input_size, opset=opset, timeout=timeout, launcher=launcher,
        cv_threshold=cv_threshold, memory_limit=memory_limit, engine_options=engine_option or [],
        cache_dir=cache_dir or default_cache())
    with user_errors():
        if resume is not None:
            _resume(resume.absolute(), given - {"resume"})
            return
        values = {k: v for k, v in options.items() if v is not None}
        if config is not None:  # the file's values, then what the command line said
            renamed = {"precision": "precisions", "engine_option": "engine_options"}
            values = {**_read_config(config.absolute()), **{renamed.get(k, k): options[renamed.get(k, k)]
                                                  for k in given if renamed.get(k, k) in options}}
        _bench(BenchConfig.from_dict({k: str(v) if isinstance(v, Path) else v for k, v in values.items()},
                                     where=str(config) if config else "options"))


def _read_config(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())  # JSON is YAML too
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UsageError(f"--config {path}: cannot read it: {' '.join(str(e).split())[:200]}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a mapping of option names to values")
    return data


def _resume(run_dir: Path, given: set) -> None:
    from .report import load_report

    if given:
        raise UsageError(f"--resume runs with the run's own settings; drop --{', --'.join(sorted(given))}")
    report = load_report(run_dir)
    saved = report.setup.get("config")
    if saved is None:
        raise UsageError(f"{run_dir}: report.json has no saved settings (made by an older e2e): cannot resume")
    cfg = BenchConfig.from_dict({**saved, "out": str(run_dir)}, where=f"{run_dir}/report.json setup.config")
    _bench(cfg, report)


def _bench(cfg: BenchConfig, resume: Any = None) -> None:
    from .bench import bench as run_bench
    from .exit_status import exit_status
    from .summary import summary_table

    # SIGTERM (a CI job cancelled, `docker stop`, `kill`) ends the run as Ctrl-C does: the
    # running engine is stopped and what was measured is saved.
    signal.signal(signal.SIGTERM, _interrupt)
    report = run_bench(cfg, console, resume)
    # A pipe or a CI log has no width: don't squeeze the table into 80 columns.
    Console(width=None if sys.stdout.isatty() else 160).print(summary_table(report))
    console.print(f"Report: {report.run_dir}/report.html (report.md, report.json, results.csv, logs/)",
                  markup=False)
    code, why = exit_status(report, cfg.fail_on)
    if code:
        console.print(f"[bold red]error:[/] {escape(why)}", highlight=False)
        raise typer.Exit(code)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@app.command("engines")
def list_engines(
    device: Annotated[Optional[str], typer.Option(help="Check for this device [default: as bench].")] = None,
) -> None:
    """List the engines and whether each can run here, and why not."""
    from .engines import discover
    from .launchers import DockerLauncher
    from .summary import availability

    with user_errors():
        cfg = BenchConfig(model="-", device=device)
    docker = DockerLauncher()
    table = Table("engine", "name", "devices", "precisions", "launchers")
    table.add_column("here", overflow="fold")
    for engine in discover().values():
        table.add_row(engine.id, engine.name, ", ".join(engine.devices), ", ".join(engine.precisions),
                      ", ".join(engine.launchers), availability(engine, cfg.device or "cpu", docker))
    Console(width=None if sys.stdout.isatty() else 160).print(table)


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
    except KeyboardInterrupt:
        console.print("interrupted: the rows finished so far are in the report")
        raise typer.Exit(130) from None


_add_subcommands()


def main() -> None:
    app()

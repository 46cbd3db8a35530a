"""`e2e explain RUN_DIR ENGINE`: where a finished row's outputs go wrong."""
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from coordinator.cli.console import console, user_errors


def explain(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (holding report.json).")],
    engine: Annotated[str, typer.Argument(help="The engine of the row to explain.")],
    precision: Annotated[Optional[str], typer.Option(help="The row's precision, when the engine has several rows.")] = None,
    sample: Annotated[Optional[int], typer.Option(
        help="The test input to compare on (its index) [default: the one furthest from PyTorch's outputs].")] = None,
    budget_mb: Annotated[float, typer.Option(
        help="Exposed tensors of one input above this size are searched by bisection instead of all at once.")] = 1024,
) -> None:
    """Name the first node whose output diverges from ONNX Runtime's while its inputs agree, and
    write it into the row (report.json and the views)."""
    from coordinator.divergence.explain import explain_run
    from coordinator.report.views._text import divergence_lines, drift_rows

    with user_errors():
        row = explain_run(run_dir.absolute(), engine, precision, sample, budget_mb,
                          log=lambda m: console.print(m, markup=False, highlight=False))
    for line in divergence_lines(row.divergence):
        console.print(escape(line), highlight=False)
    drift = drift_rows(row.divergence)
    if drift:
        console.print("relative error added per operator (most first): " + ", ".join(
            f"{o.op} {o.added:.2e} over {o.nodes} node(s)" + (f", {o.beyond} beyond tolerance" if o.beyond else "")
            for o in drift), markup=False, highlight=False)
    console.print(f"Written into {run_dir}/report.json and its views", markup=False)

"""A sweep's rows as one table: merged and pivoted with pandas (engine x point x precision), and
the latency-throughput Pareto front. pandas is imported here only, when a report has points
beyond the default one, so a plain bench and a warm rerun never pay for it."""
from typing import Any, List, Sequence, Tuple

from coordinator.report.document import Report, Row
from shared.scenarios import declared

COLUMNS = ["engine", "precision", "scenario", "batch", "concurrency", "in flight", "achieved", "samples/s",
           "p50 ms", "p99 ms", "parity", "pareto"]


def swept(report: Report) -> bool:
    """Whether any row is off the default point (latency, batch 1)."""
    return any(r.point().label() for r in report.results)


def frame(report: Report) -> Any:
    """One line per ok row: its point, samples/s and latency, and whether it is on the Pareto
    front of all rows (no other row has more samples/s at a lower p50)."""
    import pandas as pd

    ok = [r for r in report.results if r.status == "ok" and r.latency_ms and r.throughput_per_s]
    front = set(pareto([(r.throughput_per_s or 0.0, r.latency_ms.p50) for r in ok]))  # type: ignore[union-attr]
    return pd.DataFrame([_line(r, i in front) for i, r in enumerate(ok)], columns=COLUMNS)


def pivot(report: Report) -> Any:
    """samples/s with a row per (engine, precision) and a column per point."""
    table = frame(report)
    table["point"] = [point_label(s, b, c) for s, b, c in zip(table["scenario"], table["batch"], table["concurrency"])]
    return table.pivot_table(index=["engine", "precision"], columns="point", values="samples/s", aggfunc="max",
                             sort=False)


def point_label(scenario: str, batch: int, concurrency: str) -> str:
    """A sweep point as its scenario labels it ("throughput b4 c=2"); a scenario no longer
    registered by name and batch."""
    return declared(scenario).point_label(batch, concurrency)


def pareto(points: Sequence[Tuple[float, float]]) -> List[int]:
    """Indices of the (throughput, latency) points no other point beats on both (more or as
    much throughput at a lower or equal latency, one of them strictly)."""
    return [i for i, (t, lat) in enumerate(points)
            if not any(t2 >= t and l2 <= lat and (t2 > t or l2 < lat) for t2, l2 in points)]


def markdown(table: Any, digits: int = 2) -> str:
    """A DataFrame as a Markdown table (pandas' own needs the tabulate package)."""
    index = list(table.index.names) if table.index.names != [None] else []
    head = index + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, row in table.iterrows():
        keys = list(key) if isinstance(key, tuple) else ([key] if index else [])
        cells = [_cell(v, digits) for v in keys + list(row)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _line(r: Row, on_front: bool) -> dict:
    engine = r.engine + (f" ({r.variant})" if r.variant else "") + (f" @{r.machine}" if r.machine else "")
    return {"engine": engine, "precision": r.precision_label(), "scenario": r.scenario, "batch": r.batch_size,
            "concurrency": r.concurrency_requested, "in flight": r.concurrency,
            "achieved": r.achieved_concurrency, "samples/s": r.throughput_per_s, "p50 ms": r.latency_ms.p50,
            "p99 ms": r.latency_ms.p99, "parity": r.verdict(), "pareto": "yes" if on_front else ""}


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.{digits}f}"  # NaN: no row at that point
    return str(value)

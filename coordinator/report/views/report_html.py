"""`report.html`: one self-contained page (inline SVG charts and PNG pictures, no script, no
network). Jinja2 autoescapes every string that came from a model, a path or an engine."""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from coordinator.report import charts, pictures, row_text, sweep
from coordinator.report.document import Report, Row
from coordinator.report.verdict import decide
from coordinator.report.views._text import divergence_lines, drift_rows, ms, parity_text, phases_text

FILE = "report.html"
TEMPLATES = Path(__file__).parents[1] / "templates"
PICTURE_WIDTH = 340
STATUS_ORDER = ("ok", "unsupported", "failed", "timeout", "skipped")
SHORT_NOTE = 40  # characters of a note shown in the results table; the rest behind <details>


def render(report: Report, run_dir: Path) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]))
    rows = _ranked(report)
    labels = {id(r): r.label() for r in rows}
    s = report.setup
    return env.get_template("report.html.j2").render(
        report=report, model=report.model, rows=[_row(r, report.speedup(r)) for r in rows],
        fault=report.fault_headline(),
        decision=_decision(report),
        charts=[_charts(report, kind, labels) for kind in report.machine_kinds()],
        curves=_curves(report),
        sweep=_sweep(report),
        phases={k: f"{v:.1f}" for k, v in (report.setup.phase_seconds or {}).items()},
        parity=[{"label": labels[id(r)], "text": parity_text(r.parity)} for r in report.results if r.parity],
        divergences=[_divergence(r, labels[id(r)]) for r in report.results if r.divergence],
        accuracy=[_accuracy(r) for r in report.results if r.accuracy],
        detections=_detections(report, run_dir),
        setup=_pairs({"e2e_commit": s.e2e_commit, **s.settings(), "copy_policy": s.copy_policy,
                      "timed_region": s.timed_region, **({"faults": s.faults} if s.faults else {})}),
        device=_pairs(report.device.to_dict()),
        machines=[(kind, label, _pairs(d)) for kind, nodes in report.machines.items() for label, d in nodes.items()],
        model_rows=_pairs({k: v for k, v in report.model.to_dict().items() if k != "operators"} |
                          {"operators": ", ".join(f"{k} {v}" for k, v in report.model.operators.items())}),
        data=_pairs(report.data.to_dict()),
    )


def _ranked(report: Report) -> List[Row]:
    """The rows as the page lists them: per machine kind, ok rows first, then by status, each
    status fastest first (p50; rows without one keep the order they ran in)."""
    kinds = report.machine_kinds()
    return sorted(report.results, key=lambda r: (kinds.index(r.machine), STATUS_ORDER.index(r.status),
                                                 r.latency_ms.p50 if r.latency_ms else float("inf")))


def _decision(report: Report) -> Dict[str, Any]:
    """The page's opening: the verdict in sentences and the passing rows' speed-ups, fastest first."""
    v = decide(report)
    bars = []
    for r in v.ranked:
        # the interval paired within rounds; PyTorch's own is 1 by definition, nothing to draw
        e = r.rounds.vs_reference if r.rounds and not r.is_reference() else None
        x = report.speedup(r)
        if x:
            bars.append((r.label(), x, (e.low, e.high) if e and e.known() else None))
    return {"lines": v.lines(),
            "chart": charts.ranked_speedup(bars, "Passing rows, fastest first: speed-up against PyTorch")}


def _charts(report: Report, kind: str, labels: Dict[int, str]) -> Dict[str, str]:
    """The comparison charts of one machine kind (fleet mode: a set per kind; else the one set)."""
    ok = [r for r in report.rows() if r.status == "ok" and r.latency_ms and r.machine == kind]
    on = f" on {kind}" if kind else ""
    return {
        "bars": charts.latency_bars([(labels[id(r)], r.latency_ms.p50, r.latency_ms.p90, r.latency_ms.p99)
                                     for r in ok], f"Latency per engine{on}"),
        "distribution": charts.distribution(
            [(labels[id(r)], (r.latency_ms.min, r.latency_ms.p50, r.latency_ms.p90, r.latency_ms.p95,
                              r.latency_ms.p99, r.latency_ms.max)) for r in ok], f"Latency distribution{on}"),
        "speedup": charts.speedup([(labels[id(r)], report.speedup(r)) for r in ok if report.speedup(r)],
                                  f"Speed-up against PyTorch (p50){on}"),
    }


def _curves(report: Report) -> str:
    """The latency-throughput curve per engine and precision, over a sweep's points."""
    if not sweep.swept(report):
        return ""
    table = sweep.frame(report)
    series: Dict[str, list] = {}
    for _, r in table.iterrows():
        point = sweep.point_label(r["scenario"], r["batch"], r["concurrency"])
        series.setdefault(f"{r['engine']} {r['precision']}", []).append((r["samples/s"], r["p50 ms"], point))
    front = [(r["samples/s"], r["p50 ms"]) for _, r in table.iterrows() if r["pareto"]]
    return charts.latency_throughput(list(series.items()), front, "Latency against throughput")


def _sweep(report: Report) -> Dict[str, Any]:
    """The sweep's tables (pandas): every point, and samples/s pivoted by engine and point."""
    if not sweep.swept(report):
        return {}
    table = sweep.frame(report)
    pivot = sweep.pivot(report)
    fmt = lambda v: "" if v != v else f"{v:.2f}" if isinstance(v, float) else str(v)  # noqa: E731
    return {"columns": list(table.columns), "rows": [[fmt(v) for v in row] for row in table.itertuples(index=False)],
            "pivot_columns": ["engine", "precision"] + [str(c) for c in pivot.columns],
            "pivot_rows": [[*key, *(fmt(v) for v in row)] for key, row in zip(pivot.index, pivot.itertuples(index=False))]}


def _mb(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.0f}"


def _row(r: Row, speedup: Optional[float]) -> Dict[str, Any]:
    lat, res = r.latency_ms, r.resources
    note = r.note()
    # "1.52x [1.50–1.54]": the cell may wrap between the two, never inside the interval
    speed, _, interval = (r.speedup_text() or (f"{speedup:.2f}x" if speedup else "")).partition(" ")
    return {
        "engine": r.engine, "precision": r.where(), "launcher": r.launcher, "status": r.status,
        "ok": r.status == "ok", "p50": ms(lat and lat.p50), "p90": ms(lat and lat.p90), "p99": ms(lat and lat.p99),
        "mean": ms(lat and lat.mean), "cv": f"{lat.cv:.1%}" if lat else "",
        "ci": r.ci_text() if lat else "", "spread": f"{lat.robust_cv:.1%}" if lat else "", "loop": row_text.stop_text(r),
        "throughput": f"{r.throughput_per_s:.2f}" if r.throughput_per_s else "",
        "speedup": speed, "interval": interval, "parity": r.verdict(), "note": note, "short_note": _short(note),
        "start": ms(r.start_overhead_s), "first": ms(r.first_inference_ms), "phases": phases_text(r),
        **{k: ms(r.stage_seconds.get(k)) for k in ("setup", "load", "convert", "compile")},
        "rss": f"{res.peak_rss_mb:.0f}" if res else "",
        "rss_load": _mb(res and res.load_peak_rss_mb), "rss_steady": _mb(res and res.steady_peak_rss_mb), "cpu": f"{res.cpu_util_percent:.0f}" if res else "",
        "faults": "" if res is None or res.page_faults_per_call is None else f"{res.page_faults_per_call:,.0f}",
        "gpu": ", ".join(f"{k} {v:.0f}" for k, v in res.gpu.items()) if res else "",
        "settings": json.dumps(r.settings, sort_keys=True, default=str) + (f" image {r.image}" if r.image else ""),
    }


def _short(note: str) -> str:
    """A note's gist for the table cell: the head of each part ("imprecise; noisy", "at convert
    [Conv]"), cut to SHORT_NOTE characters."""
    head = "; ".join(part.split(":")[0].strip() for part in note.split("; "))
    return head if len(head) <= SHORT_NOTE else head[:SHORT_NOTE - 1].rstrip() + "…"


def _divergence(r: Row, label: str) -> Dict[str, Any]:
    d = r.divergence
    assert d is not None
    return {"label": label, "lines": divergence_lines(d), "drift": drift_rows(d),
            "chart": charts.error_by_depth([(p.depth, p.ratio) for p in d.by_depth],
                                           d.first.depth if d.first else None, f"Error by depth, as a multiple of the tolerance: {label}")}


def _accuracy(r: Row) -> Dict[str, str]:
    a = r.accuracy
    return {"engine": r.engine, "precision": r.precision_label(), "metric": a.metric, "value": f"{a.value:.4f}",
            "reference": "" if a.reference is None else f"{a.reference:.4f}",
            "drop": "" if a.drop is None else f"{a.drop:+.4f}"}


def _pairs(d: Dict[str, Any]) -> List[tuple]:
    return [(k, v if isinstance(v, (str, int, float)) else json.dumps(v, default=str)) for k, v in d.items()]


def _detections(report: Report, run_dir: Path) -> List[Dict[str, Any]]:
    """The first test image with each engine's boxes drawn on it, PyTorch's first. The image is
    the run directory's copy (bench keeps it there): the cache it came from may be gone."""
    inputs = pictures.input_sample(report, run_dir)
    if inputs is None:  # a report from before the copy, or not a detector
        return []
    from shared.tensors import load_samples

    drawn = []
    for r in report.results:
        outputs = run_dir / Path(r.log).parent / (r.outputs_file or "") if r.log else None
        if r.status != "ok" or outputs is None or not outputs.is_file():
            continue
        png = pictures.picture(report, inputs, load_samples(str(outputs))[0])
        if png:
            drawn.append({"label": f"{r.engine} {r.precision_label()}", "width": PICTURE_WIDTH, "png": png})
    return drawn

"""The run directory's report: `report.json` (versioned), `results.csv`, `report.md`.

`report.json` is the source; the other files are views made from it.
"""
import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from shared.records import Record, write_json_atomic
from shared.result import RunResult

from .engines import REFERENCE, Engine
from .accuracy import Accuracy
from .parity import Parity

REPORT_SCHEMA_VERSION = 1


@dataclass
class Row(RunResult):
    """One (engine, precision): the runner's result plus what the coordinator knows of it."""

    name: str = ""  # the engine's display name
    launcher: str = ""  # host, venv or docker; empty when nothing was launched
    precision_requested: str = ""
    parity: Optional[Parity] = None
    log: str = ""  # the runner's log, relative to the run directory
    start_overhead_s: Optional[float] = None  # from launching the runner to its first log line
    accuracy: Optional[Accuracy] = None  # task metric with --dataset
    noisy: bool = False  # robust per-input spread above the run's threshold: rerun on a quieter machine
    image: str = ""  # the Docker image (tag@id) the row ran in
    model_input: str = ""  # what the engine was given: "ONNX opset 17", "the PyTorch model"

    @classmethod
    def make(cls, engine: Engine, launcher: str, precision: str, result: RunResult,
             log: Optional[Path] = None, run_dir: Optional[Path] = None) -> "Row":
        fields = {k: v for k, v in vars(result).items()}
        rel = os.path.relpath(log, run_dir) if log and run_dir and log.exists() else ""
        return cls(**fields, name=engine.name, launcher=launcher, precision_requested=precision, log=rel)

    def precision_label(self) -> str:
        """What the engine ran at, and what was asked when the engine chose otherwise."""
        if self.precision and self.precision != self.precision_requested:
            return f"{self.precision} (asked {self.precision_requested})"
        return self.precision or self.precision_requested

    def summary(self) -> str:
        if self.status != "ok" or self.latency_ms is None:
            where = f" at {self.stage}" if self.stage else ""
            op = f" [{self.error.operator}]" if self.error and self.error.operator else ""
            return f"{where}{op}: {self.reason}".lstrip(": ")
        noisy = f", NOISY (spread {self.latency_ms.robust_cv:.1%})" if self.noisy else ""
        why = f" ({parity_failure(self.parity)})" if self.parity and not self.parity.passed else ""
        return f"p50 {self.latency_ms.p50:.2f} ms {self.ci_text()}, parity {self.verdict()}{why}{noisy}"

    def ci_text(self) -> str:
        """How well p50 is known: "±0.4%" (95% interval), "±?" with too few calls."""
        half = self.latency_ms.ci_halfwidth() if self.latency_ms else None
        return "±?" if half is None else f"±{half:.1%}"

    def imprecise(self) -> bool:
        """An ok row whose median is not known to the precision asked (the budget ran out)."""
        m = self.measurement
        if self.status != "ok" or m is None or m.target_ci is None:
            return False
        half = self.latency_ms.ci_halfwidth() if self.latency_ms else None
        return half is None or half > m.target_ci

    def stop_text(self) -> str:
        """Why the timed loop stopped, in words."""
        m = self.measurement
        if m is None or self.latency_ms is None:
            return ""
        n, secs = self.latency_ms.count, m.timed_s
        if m.stop == "count":
            return f"{n} calls in {secs:.1f} s (fixed count)"
        if m.stop == "converged":
            return f"{n} calls in {secs:.1f} s: median known to ±{m.target_ci:.0%}"
        return f"{n} calls in {secs:.1f} s: budget spent before the median was known to ±{m.target_ci:.0%}"

    def load_seconds(self) -> float:
        """Load, convert and compile together."""
        return sum(v for k, v in self.stage_seconds.items() if k in ("load", "convert", "compile"))

    def spread(self) -> str:
        """With --repeats: the range of the repeats' medians, relative to their median."""
        if len(self.repeat_p50_ms) < 2:
            return ""
        xs = sorted(self.repeat_p50_ms)
        mid = xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
        return f"{len(xs)} repeats, p50 {xs[0]:.2f}–{xs[-1]:.2f} ms (spread {(xs[-1] - xs[0]) / mid:.1%})"

    def note(self) -> str:
        """The note column of every view: why a row is not ok, or what to know about its figures."""
        if self.status != "ok" or self.latency_ms is None:
            return self.summary()
        parts = [f"parity: {parity_failure(self.parity)}" if self.parity and not self.parity.passed else "",
                 f"noisy: spread {self.latency_ms.robust_cv:.1%}" if self.noisy else "",
                 f"imprecise: p50 {self.ci_text()} after {self.stop_text()}" if self.imprecise() else "",
                 self.spread()]
        return "; ".join(p for p in parts if p)

    def verdict(self) -> str:
        if self.parity is None:
            return "reference" if self.engine == REFERENCE and self.status == "ok" else "-"
        return verdict(self.parity)


def verdict(parity: Parity) -> str:
    return "passed" if parity.passed else "FAILED"


@dataclass
class Report(Record):
    e2e_version: str
    created: str
    command: str
    run_dir: str
    setup: Dict[str, Any]
    device: Dict[str, Any]
    model: Dict[str, Any]
    data: Dict[str, Any]
    results: List[Row] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    interrupted: bool = False
    schema_version: int = REPORT_SCHEMA_VERSION

    def reference_p50(self, precision: str = "fp32") -> Optional[float]:
        for r in self.results:
            if r.engine == REFERENCE and r.precision_requested == precision and r.latency_ms:
                return r.latency_ms.p50
        return None


def load_report(run_dir: Path) -> Report:
    """A run's report.json, checked: it names files that the views read, and none of them may
    lie outside the run directory (a report is data, and may come from someone else)."""
    from .errors import UsageError

    path = run_dir / "report.json" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise UsageError(f"no report.json in {run_dir}")
    report = Report.load(str(path))
    for i, r in enumerate(report.results):
        for name, value in (("log", r.log), ("outputs_file", r.outputs_file or "")):
            if not inside(value):
                raise UsageError(f"{path}: results[{i}].{name} {value!r} escapes the run directory")
    return report


def inside(relative: str) -> bool:
    """A relative path that stays below its base directory."""
    parts = Path(relative).parts
    return not Path(relative).is_absolute() and ".." not in parts


def write_report(report: Report, run_dir: Path, views: bool = True) -> None:
    write_json_atomic(str(run_dir / "report.json"), report.to_dict())
    if views:
        from .html_report import render

        (run_dir / "results.csv").write_text(results_csv(report))
        (run_dir / "report.md").write_text(markdown(report))
        (run_dir / "report.html").write_text(render(report, run_dir))


def results_csv(report: Report) -> str:
    """One row per (engine, precision), nested fields flattened (`latency_ms.p50`, ...)."""
    rows = []
    ref = report.reference_p50()
    for r in report.results:
        d = r.to_dict()
        for drop in ("environment", "settings", "error", "parity", "measurement", "per_input_ms"):
            d.pop(drop)
        d["speedup_vs_torch"] = ref / r.latency_ms.p50 if ref and r.latency_ms else None
        d["parity_passed"] = r.parity.passed if r.parity else None
        rows.append(_flat(d))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _flat(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            flat.update(_flat(v, f"{prefix}{k}."))
        else:
            flat[prefix + k] = (json.dumps(v) if v else "") if isinstance(v, (list, dict)) else v
    return flat


def _ms(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.2f}"


def markdown(report: Report) -> str:
    m = report.model
    ref = report.reference_p50()
    lines = [
        f"# e2e report: {m.get('name')}", "",
        f"`{report.command}` — e2e {report.e2e_version}, {report.created}", "",
        *[f"> **Note:** {n}" for n in report.notes], "",
        "## Results", "",
        "| engine | precision | launcher | status | p50 ms | ±95% | p90 ms | p99 ms | mean ms | CV | speed-up vs torch | parity | peak RSS MB | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.results:
        lat = r.latency_ms
        speedup = f"{ref / lat.p50:.2f}x" if ref and lat else ""
        rss = f"{r.resources.peak_rss_mb:.0f}" if r.resources else ""
        note = r.note().replace("|", "\\|")
        lines.append(f"| {r.engine} | {r.precision_label()} | {r.launcher} | {r.status} | "
                     f"{_ms(lat and lat.p50)} | {r.ci_text() if lat else ''} | {_ms(lat and lat.p90)} | {_ms(lat and lat.p99)} | "
                     f"{_ms(lat and lat.mean)} | {f'{lat.cv:.1%}' if lat else ''} | {speedup} | "
                     f"{r.verdict()} | {rss} | {note} |")
    s, d, data = report.setup, report.device, report.data
    lines += [
        "", "## Setup", "",
        f"- device `{s['device']}`, threads {s['threads']} for every engine, warm-up {s['warmup']} calls "
        f"or {s.get('warmup_time_s', '-')} s at most, " + (f"a fixed {s['iterations']} timed calls" if s.get("iterations")
        else f"timed calls until p50 is known to ±{s.get('target_ci', 0):.0%} (95% interval) or "
             f"{s.get('max_time_s', '-')} s") + f", minimum time {s['min_time_s']} s, repeats {s.get('repeats', 1)}",
        f"- {s['copy_policy']}; timed region: {s['timed_region']}",
        "- phases: " + ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in s.get("phase_seconds", {}).items()),
        "", "## Device", "",
        f"- CPU {d['cpu']} ({d['physical_cores']} physical cores, flags: {', '.join(d['cpu_flags']) or '-'}), "
        f"{d['memory_gb']} GB, {d['os']}",
        f"- GPUs: {', '.join(g['name'] for g in d['gpus']) or 'none'}",
        "", "## Model", "",
        f"- {m.get('name')} from `{m.get('source')}`, weights: {m['weights']['kind']} ({m['weights']['detail']})",
        f"- ONNX opset {m['opset']}, {m['exporter']}, {m['file_bytes'] / 2**20:.1f} MiB, sha256 {m['sha256'][:16]}…,"
        f" {m['nodes']} nodes",
        f"- inputs: {', '.join(_tensor(t) for t in m['inputs'])}; outputs: {', '.join(_tensor(t) for t in m['outputs'])}",
        "", "## Test data", "",
        f"- {data['count']} images from {data['source']}: {data['preprocessing']}",
        "", "## Outputs (parity with PyTorch)", "",
    ]
    for r in report.results:
        if r.parity:
            lines.append(f"- **{r.engine}** ({r.precision_label()}): {parity_text(r.parity)}")
    scored = [r for r in report.results if r.accuracy]
    if scored:
        lines += ["", f"## Task accuracy ({data['source']}, {data['count']} images)", ""]
        for r in scored:
            a = r.accuracy
            ref = "" if a.reference is None else f" (PyTorch {a.reference:.4f}, drop {a.drop:+.4f})"
            lines.append(f"- **{r.engine}** ({r.precision_label()}): {a.metric} {a.value:.4f}{ref}")
    lines += ["", "## Resource usage", ""]
    for r in report.results:
        if r.resources:
            res = r.resources
            split = "" if res.steady_peak_rss_mb is None or res.load_peak_rss_mb is None else \
                f" (load {res.load_peak_rss_mb:.0f} MB, timed loops {res.steady_peak_rss_mb:.0f} MB)"
            lines.append(f"- **{r.engine}**: peak RSS {r.resources.peak_rss_mb:.0f} MB{split}, CPU "
                         f"{r.resources.cpu_util_percent:.0f}% during the timed loop, setup "
                         f"{r.stage_seconds.get('setup', 0):.2f} s, load {r.load_seconds():.2f} s, first inference "
                         f"{_ms(r.first_inference_ms)} ms; timed loop: {r.stop_text()}")
    configured = [r for r in report.results if r.settings]
    if configured:  # what each engine ran with, read back from it: threads, providers, tuning...
        lines += ["", "## Engine settings", ""]
        lines += [f"- **{r.engine}** ({r.precision_label()}): " + "; ".join(
            f"{k} `{json.dumps(v, sort_keys=True, default=str)}`" for k, v in sorted(r.settings.items()))
            for r in configured]
    phased = [r for r in report.results if r.breakdown_ms]
    if phased:
        lines += ["", "## Phases (median of the later, untimed warm-up calls)", ""]
        lines += [f"- **{r.engine}**: {phases_text(r)}" for r in phased]
    return "\n".join(lines) + "\n"


def phases_text(r: Row) -> str:
    return ", ".join(f"{k} {v:.2f} ms" for k, v in r.breakdown_ms.items())


def parity_failure(p: Parity) -> str:
    """Why parity failed, in a few words."""
    if p.note:
        return p.note
    if p.classification:
        c = p.classification
        return (f"{c.output}: top-1 agreement {c.top1_agreement:.0%}, min cosine {c.min_cosine:.4f} "
                f"(need 100% and {c.min_required_cosine})")
    if p.detection:
        d = p.detection
        return (f"{d.matched_fraction:.0%} of boxes matched, labels {d.label_agreement:.0%} equal, "
                f"mean IoU {d.mean_iou:.3f}")
    for o in p.outputs:
        if not o.passed:
            return f"{o.name}: {o.note}" if o.note else f"{o.name}: max abs diff {o.max_abs:.2e} > atol {p.atol:g} + rtol {p.rtol:g}"
    return "failed"


def parity_text(p: Parity) -> str:
    if p.detection:
        d = p.detection
        return (f"{verdict(p)} — {d.matched}/{max(d.reference_boxes, d.engine_boxes)} boxes matched "
                f"({d.matched_fraction:.1%}, need {d.min_matched_fraction:.0%}), mean IoU {d.mean_iou:.4f}, "
                f"labels {d.label_agreement:.1%} equal, max score diff {d.max_score_diff:.2e}, "
                f"only in reference {d.only_reference}, only in engine {d.only_engine}, fidelity mAP "
                f"{'-' if d.fidelity_map is None else f'{d.fidelity_map:.4f}'}")
    if p.note:
        return f"{verdict(p)} — {p.note}"
    if p.classification:
        c = p.classification
        o = p.outputs[0]
        return (f"{verdict(p)} — {c.output}: top-1 agreement {c.top1_agreement:.0%} over {c.inputs} input(s), "
                f"min cosine {c.min_cosine:.5f} (need 100% and >= {c.min_required_cosine}); elementwise max abs "
                f"{o.max_abs:.2e}, beyond atol {p.atol:g} + rtol {p.rtol:g}: {'no' if o.passed else 'yes'}")
    worst = ", ".join(f"{o.name}: max abs {o.max_abs:.2e}, max rel {o.max_rel:.2e}" if o.max_abs is not None
                      else f"{o.name}: {o.note}" for o in p.outputs)
    return f"{verdict(p)} (atol {p.atol:g}, rtol {p.rtol:g}) — {worst}"


def _tensor(t: Dict[str, Any]) -> str:
    return f"`{t['name']}` {t['dtype']}[{', '.join(str(d) for d in t['shape'])}]"

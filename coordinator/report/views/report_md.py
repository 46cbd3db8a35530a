"""`report.md`: the report's six sections as Markdown, for a pull request or a wiki."""
import json
from pathlib import Path
from typing import List

from coordinator.report import row_text, sweep
from coordinator.report.document import Report
from coordinator.run.round_stats import AUDIT_FLAG
from coordinator.report.sections import TensorInfo
from coordinator.report.verdict import decide
from coordinator.report.views._text import divergence_lines, drift_rows, ms, parity_text, phases_text

FILE = "report.md"


def render(report: Report, run_dir: Path) -> str:
    sections = (_decision, _results, _sweep, _setup, _device, _model, _parity, _accuracy, _resources, _rounds,
                _settings, _tuning, _phases)
    return "\n".join(line for section in sections for line in section(report)) + "\n"


def _decision(report: Report) -> List[str]:
    return [f"# e2e report: {report.model.name}" + (f" — {report.fault_headline()}" if report.fault_headline() else ""),
            "", f"`{report.command}` — e2e {report.e2e_version}, {report.created}", "",
            "## Decision", "",
            *[f"- {line}" for line in decide(report).lines()], "",
            *[f"> **Note:** {n}" for n in report.notes], ""]


def _results(report: Report) -> List[str]:
    lines = [
        "## Results", "",
        "| engine | precision | launcher | status | p50 ms | ±95% | p90 ms | p99 ms | mean ms | CV | speed-up vs torch | parity | peak RSS MB | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.rows():
        lat = r.latency_ms
        speedup = r.speedup_text() or (f"{report.speedup(r):.2f}x" if report.speedup(r) else "")
        rss = f"{r.resources.peak_rss_mb:.0f}" if r.resources else ""
        note = r.note().replace("|", "\\|")
        lines.append(f"| {r.engine} | {r.where()} | {r.launcher} | {r.status} | "
                     f"{ms(lat and lat.p50)} | {r.ci_text() if lat else ''} | {ms(lat and lat.p90)} | {ms(lat and lat.p99)} | "
                     f"{ms(lat and lat.mean)} | {f'{lat.cv:.1%}' if lat else ''} | {speedup} | "
                     f"{r.verdict()} | {rss} | {note} |")
    return lines


def _sweep(report: Report) -> List[str]:
    if not sweep.swept(report):
        return []
    return ["", "## Throughput and latency per point", "",
            "Samples/s in the throughput scenario: samples finished over the timed loop's wall time, the "
            "drain included, every engine with the same thread budget; achieved: the concurrency the "
            "engine really overlapped; pareto: no other row has more samples/s at a lower p50.", "",
            sweep.markdown(sweep.frame(report).set_index(["engine", "precision"])), "",
            "Samples/s by engine and point:", "", sweep.markdown(sweep.pivot(report))]


def _setup(report: Report) -> List[str]:
    setup, s = report.setup, report.setup.settings()
    return [
        "", "## Setup", "",
        f"- device `{s['device']}`, threads {s['threads']} for every engine, warm-up {s['warmup']} calls "
        f"or {s.get('warmup_time', '-')} s at most, " + (f"a fixed {s['iterations']} timed calls" if s.get("iterations")
        else f"timed calls until p50 is known to ±{s.get('target_ci', 0):.0%} (95% interval) or "
             f"{s.get('max_time', '-')} s") + f", minimum time {s['min_time']} s, repeats {s.get('repeats', 1)}",
        f"- schedule: {_schedule(s)}",
        f"- {setup.copy_policy}; timed region: {setup.timed_region}",
        *([f"- fault injection: {', '.join(f'{k}={v}' for k, v in setup.faults.items())}"] if setup.faults else []),
        "- phases: " + ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in (setup.phase_seconds or {}).items())]


def _device(report: Report) -> List[str]:
    d = report.device
    return ["", "## Device", "",
            f"- CPU {d.cpu} ({d.physical_cores} physical cores, flags: {', '.join(d.cpu_flags) or '-'}), "
            f"{d.memory_gb} GB, {d.os}",
            f"- GPUs: {', '.join(g.name for g in d.gpus) or 'none'}",
            *_machines(report)]


def _model(report: Report) -> List[str]:
    m, data = report.model, report.data
    return [
        "", "## Model", "",
        f"- {m.name} from `{m.source}`, weights: {m.weights.kind} ({m.weights.detail})",
        f"- ONNX opset {m.opset}, {m.exporter}, {m.file_bytes / 2**20:.1f} MiB, sha256 {m.sha256[:16]}…,"
        f" {m.nodes} nodes",
        *(f"- not exported with {why}" for why in m.exporters_not_used or ()),
        f"- inputs: {', '.join(_tensor(t) for t in m.inputs)}; outputs: {', '.join(_tensor(t) for t in m.outputs)}",
        *([f"- example inputs: {m.example_inputs}"] if m.example_inputs else []),
        "", "## Test data", "",
        f"- {data.count} {'images' if data.images else 'samples' if data.count != 1 else 'sample'} from {data.source}: {data.preprocessing}"]


def _parity(report: Report) -> List[str]:
    lines = ["", "## Outputs (parity with PyTorch)", ""]
    for r in report.results:
        if r.parity:
            lines.append(f"- **{r.engine}** ({r.precision_label()}): {parity_text(r.parity)}")
        lines += [f"  - {line}" for line in divergence_lines(r.divergence)]
        if drift_rows(r.divergence):
            lines += ["", "    | operator | nodes | relative error added | worst | beyond tolerance |",
                      "    |---|---|---|---|---|"]
            lines += [f"    | {o.op} | {o.nodes} | {o.added:.2e} | {o.worst:.2e} | {o.beyond} |" for o in drift_rows(r.divergence)]
            lines.append("")
    return lines


def _accuracy(report: Report) -> List[str]:
    scored = [r for r in report.results if r.accuracy]
    if not scored:
        return []
    lines = ["", f"## Task accuracy ({report.data.source}, {report.data.count} images)", ""]
    for r in scored:
        a = r.accuracy
        ref = "" if a.reference is None else f" (PyTorch {a.reference:.4f}, drop {a.drop:+.4f})"
        lines.append(f"- **{r.engine}** ({r.precision_label()}): {a.metric} {a.value:.4f}{ref}")
    return lines


def _resources(report: Report) -> List[str]:
    lines = ["", "## Resource usage", ""]
    for r in report.results:
        if r.resources:
            res = r.resources
            split = "" if res.steady_peak_rss_mb is None or res.load_peak_rss_mb is None else \
                f" (load {res.load_peak_rss_mb:.0f} MB, timed loops {res.steady_peak_rss_mb:.0f} MB)"
            faults = "" if res.page_faults_per_call is None else f", {res.page_faults_per_call:,.0f} page faults a call"
            lines.append(f"- **{r.engine}**: peak RSS {r.resources.peak_rss_mb:.0f} MB{split}, CPU "
                         f"{r.resources.cpu_util_percent:.0f}% during the timed loop{faults}, setup "
                         f"{r.stage_seconds.get('setup', 0):.2f} s, load {r.load_seconds():.2f} s, first inference "
                         f"{ms(r.first_inference_ms)} ms; timed loop: {row_text.stop_text(r)}")
    return lines


def _rounds(report: Report) -> List[str]:
    """The interleaved schedule: how each row's figures were reached."""
    rounded = [r for r in report.results if r.rounds]
    if not rounded:
        return []
    lines = ["", "## Interleaved rounds", "",
             "Each row's p50 is the trimmed mean of its per-round medians; intervals are a block bootstrap over rounds, "
             "never narrower than the gap between the run's two halves, nor than the gap between processes "
             "(the reference runs in two processes at least: a process alone can be a few % faster or slower "
             "for its whole life); ratios are paired within rounds. "
             "Waiting CPU: what the runner used while the others were timed (% of one core); settle: the "
             "wait after its slice for its own threads to go quiet; audit: its time on one input repeated "
             f"over its time on the inputs in turn (under {AUDIT_FLAG} it may be reusing results).", "",
             "| row | rounds | processes | stop | p50 ms [95%] | vs torch [95%] | vs fastest [95%] | paired spread "
             "| drift | waiting CPU mean / max | settle ms | audit |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rounded:
        o = r.rounds
        est = lambda e: e.text() if e else "-"  # noqa: E731
        lines.append(f"| {r.label()} | {len(o.round_p50_ms)} (group {o.group + 1}) | {o.processes} | {o.stop} | "
                     f"{est(o.p50_ms)} | "
                     f"{est(o.vs_reference)} | {est(o.vs_fastest)} | {o.paired_spread:.1%} | {o.drift:.1%} | "
                     f"{o.waiting_cpu_percent:.1f}% / {o.waiting_cpu_max_percent:.1f}% | {o.settle_ms:.0f} | "
                     + (f"{o.repeated_over_rotated:.3f}" if o.repeated_over_rotated else "-") + " |")
    spreads = sorted({r.rounds.process_spread for r in rounded if r.rounds.process_spread > 0})
    if spreads:
        lines += ["", "Gap between processes of one row (one standard deviation of a process's figure, from the "
                  "rows timed in several): " + ", ".join(f"{x:.1%}" for x in spreads) + "; every interval above "
                  "includes it."]
    return lines


def _settings(report: Report) -> List[str]:
    """What each engine ran with, read back from it: threads, providers, its own options."""
    configured = [r for r in report.results if r.settings]
    if not configured:
        return []
    return ["", "## Engine settings", "", *(f"- **{r.engine}** ({r.precision_label()}): " + "; ".join(
        f"{k} `{json.dumps(v, sort_keys=True, default=str)}`" for k, v in sorted(r.settings.items()))
        for r in configured)]


def _tuning(report: Report) -> List[str]:
    """--tune: what was tried for each tuned row (a short loop each), and what it chose."""
    tuned = [r for r in report.results if r.search]
    if not tuned:
        return []
    lines = ["", "## Tuning (--tune: each engine's declared options, a short loop each)", ""]
    for r in tuned:
        lines.append(f"- **{r.engine}** ({r.where()}): chose `{json.dumps(r.tuned_options)}`; tried " + "; ".join(
            f"`{json.dumps(t.options, sort_keys=True)}` " + (
                f"{t.samples_per_s:.2f}/s, p50 {t.p50_ms:.2f} ms, parity {t.parity}" if t.status == "ok"
                else f"{t.status}: {t.reason}") for t in r.search))
    return lines


def _phases(report: Report) -> List[str]:
    phased = [r for r in report.results if r.breakdown_ms]
    if not phased:
        return []
    return ["", "## Phases (torch: median of the later, untimed warm-up calls; a host pipeline: pre and post "
            "timed on the host per row, inference the engine's p50)", "", *(f"- **{r.engine}**: {phases_text(r)}"
                                                                             for r in phased)]


def _schedule(settings: dict) -> str:
    if settings.get("schedule", "sequential") == "sequential" or settings.get("hosts"):
        return "sequential: one row after another, each in its own time window"
    return (f"interleaved: every row loaded, then timed in rounds of {settings.get('slice_time')} s slices in a "
            f"rotating order, until every ratio is known to ±{settings.get('target_ratio', 0):.0%} or "
            f"{settings.get('rounds_budget')} s of timed calls per row; each row in {settings.get('processes', 1)} "
            f"runner process(es), the reference in 2 at least")


def _machines(report: Report) -> list:
    """Fleet mode: each node that ran rows, by machine kind (the device section above is the
    coordinator's machine)."""
    if not report.machines:
        return []
    lines = ["", "The rows ran on a fleet (the device above is the coordinator's):"]
    for kind, nodes in report.machines.items():
        for label, d in nodes.items():
            gpus = ", ".join(g.get("name", "") for g in d.get("gpus", [])) or "no GPU"
            lines.append(f"- **{kind}**: {label}: CPU {d.get('cpu')} ({d.get('physical_cores')} physical cores), "
                         f"{d.get('memory_gb')} GB, {gpus}, {d.get('os')}, Python {d.get('python')}")
    return lines


def _tensor(t: TensorInfo) -> str:
    return f"`{t.name}` {t.dtype}[{', '.join(str(d) for d in t.shape)}]"

"""The figures the verdict's arithmetic line needs: the model's GFLOP a call (counted at export;
here only for an export made by an older e2e) and this machine's measured peaks."""
from typing import Any, Dict

from shared.spec import PRECISIONS
from shared.tensors import load_samples
from shared.errors import one_line

from coordinator.config import BenchConfig
from coordinator.machine import peak
from coordinator.model import flops
from coordinator.report.document import Report
from coordinator.run.prepare import Prepared


def count_if_missing(report: Report, prepared: Prepared, console: Any, log: Any) -> None:
    artifact = prepared.artifact
    if report.model.gflop is not None or artifact.torch_card is None:
        return
    with console.status("counting the model's arithmetic..."):
        try:
            sample = list(load_samples(str(prepared.data.inputs_path))[0].values())
            report.model.gflop = flops.of_card(artifact.torch_card, sample)
        except Exception as e:  # a figure for the verdict, never a reason to stop the bench
            log(f"The model's arithmetic could not be counted ({type(e).__name__}: {one_line(e, 200)})")


def measure_peaks(report: Report, cfg: BenchConfig, log: Any) -> None:
    """This machine's measured peak at every precision (after every row: nothing else runs
    meanwhile; once per machine), for the verdict's share of the peak and the peaks above it."""
    rows = [r for r in report.results if r.status == "ok" and not r.machine and r.latency_ms and r.batch_size == 1
            and r.scenario == "latency" and r.precision in PRECISIONS]  # one call at a time: its p50 is one call's
    if report.model.gflop is None or not rows:
        return
    reached: Dict[str, float] = {}
    for r in rows:
        reached[r.precision] = max(reached.get(r.precision, 0.0), report.model.gflop / (r.latency_ms.p50 / 1e3))
    device = cfg.execution.device or "cpu"
    d = report.device
    identity = d.gpus[0].name if device != "cpu" and d.gpus else f"{d.cpu} {' '.join(d.cpu_flags)}"
    try:
        report.device.peak_gflops = peak.peaks(cfg.execution.cache_dir, cfg.execution.threads or 1, device, identity,
                                               reached=reached)
    except Exception as e:
        log(f"This machine's arithmetic peaks could not be measured ({type(e).__name__}: {one_line(e, 200)})")

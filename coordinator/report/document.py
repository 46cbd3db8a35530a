"""The report's data: `Report`, its `Row`s and its sections (`sections.py`), what `report.json`
(versioned) holds.

The files of a run directory are views of it, made by `coordinator/report/views/`.
"""
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Type

from shared.records import Record
from shared.result import RunResult

from coordinator.engines import NEVER, REFERENCE, Engine
from coordinator.report import faults, row_text
from coordinator.report.accuracy import Accuracy
from coordinator.divergence.search import Divergence
from coordinator.report.parity import Parity
from coordinator.run.points import Point
from coordinator.run.round_stats import Rounds
from coordinator.report.sections import DataInfo, Device, ModelInfo, Section
from coordinator.report.setup import Setup

# 2: setup holds each setting once, in config (1 also had copies; still read); 3: fleet rows carry
# their machine kind and node, and `machines` describes each node; 4: rows carry their engine's
# `verified` and an injected `fault`, setup the fault-injection hooks of the run (`faults`); 5: setup.config
# nested by section (a flat one, 1-4, is still read)
REPORT_SCHEMA_VERSION = 5


@dataclass
class Trial(Record):
    """One candidate of a --tune search: its options, how its short loop ended, and its figures."""

    options: Dict[str, Any]
    status: str
    samples_per_s: Optional[float] = None
    p50_ms: Optional[float] = None
    parity: str = ""
    reason: str = ""


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
    image: str = ""  # where the row ran (Launcher.provenance): image tag@id, venv and its pins, or the host Python
    model_input: str = ""  # what the engine was given: "ONNX opset 17", "the PyTorch model"
    divergence: Optional[Divergence] = None  # where the outputs go wrong (e2e explain, bench --explain)
    # the sweep point's concurrency as asked (a count, "engine", "auto:N"); `concurrency` is as run
    concurrency_requested: str = "1"
    # "" for the equal-threads row; "tuned": the best of the engine's declared options (--tune),
    # with every candidate's options and figures in `search`, and the options it chose
    variant: str = ""
    search: List[Trial] = field(default_factory=list)
    tuned_options: Optional[Dict[str, Any]] = None
    # how the row was timed when not as the run's schedule says ("sequential: its launcher cannot keep it loaded")
    schedule: str = ""
    machine: str = ""  # fleet mode (--hosts): the machine kind the row ran on; "" on this machine
    node: str = ""  # fleet mode: the node that ran it (its address and Ray node id)
    rounds: Optional[Rounds] = None  # interleaved schedule: the figures over rounds (coordinator/run)
    # the device kinds e2e's tests have run the engine on (its manifest's `verified`): "cpu",
    # "cpu, cuda", or "never" (untested code); "" in a report older than the key
    verified: str = ""
    fault: str = ""  # the fault E2E_FAULT injected into the row's runner (shared/faults.py); "" nearly always

    @classmethod
    def make(cls, engine: Engine, launcher: str, precision: str, result: RunResult,
             log: Optional[Path] = None, run_dir: Optional[Path] = None, point: Point = Point()) -> "Row":
        fields = {k: v for k, v in vars(result).items()}
        # a row the coordinator made (skipped, failed to start) is still at its point
        fields.update(scenario=point.scenario, batch_size=point.batch)
        rel = os.path.relpath(log, run_dir) if log and run_dir and log.exists() else ""
        return cls(**fields, name=engine.name, launcher=launcher, precision_requested=precision, log=rel,
                   concurrency_requested=point.concurrency, verified=engine.verified_text,
                   fault=faults.injected(engine.id) if launcher else "")  # a skipped row ran nothing

    def point(self) -> Point:
        return Point(self.scenario, self.batch_size, self.concurrency_requested)

    def is_reference(self) -> bool:
        """PyTorch at fp32 (at any point): what the other rows' outputs and speed are held against.
        A PyTorch row at bf16 is a row like any other."""
        return self.engine == REFERENCE and self.precision_requested == "fp32" and not self.variant

    def key(self) -> tuple:
        """What identifies the row in a run (resume) and across runs (compare)."""
        return row_key(self.engine, self.precision_requested, self.point(), self.variant, self.machine)

    def where(self) -> str:
        """The precision, the point off the default one, tuned, and the machine kind in fleet mode:
        "fp32 throughput b4 c=2 tuned @gpu-a100"."""
        return " ".join(p for p in (self.precision_label(), self.point().label(), self.variant,
                                    f"@{self.machine}" if self.machine else "") if p)

    def label(self) -> str:
        """The engine, its precision, off the default point the point, and in fleet mode the machine
        kind: "ort fp32 throughput b4 c=2 @gpu-a100"."""
        return f"{self.engine} {self.where()}"

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
        spread = self.rounds.paired_spread if self.rounds else self.latency_ms.robust_cv
        noisy = f", NOISY (spread {spread:.1%})" if self.noisy else ""
        if self.speedup_text():
            noisy = f", {self.speedup_text()} vs {REFERENCE}" + noisy
        why = f" ({row_text.parity_failure(self.parity)})" if self.parity and not self.parity.passed else ""
        return f"p50 {self.latency_ms.p50:.2f} ms {self.ci_text()}, parity {self.verdict()}{why}{noisy}"

    def ci_text(self) -> str:
        """How well p50 is known: "±0.4%" (95% interval), "±?" with too few calls."""
        half = self.latency_ms.ci_halfwidth() if self.latency_ms else None
        return "±?" if half is None else f"±{half:.1%}"

    def speedup_text(self) -> str:
        """Interleaved: the paired speed-up over the reference with its interval, "1.52x [1.50–1.54]"."""
        e = self.rounds.vs_reference if self.rounds else None
        return e.text(unit="x") if e is not None and not self.is_reference() else ""

    def imprecise(self) -> bool:
        """An ok row whose median (sequential) or ratios (interleaved) are not known to the
        precision asked: the budget ran out first."""
        if self.rounds is not None:
            return self.status == "ok" and self.rounds.stop == "budget"
        m = self.measurement
        if self.status != "ok" or m is None or m.target_ci is None:
            return False
        half = self.latency_ms.ci_halfwidth() if self.latency_ms else None
        return half is None or half > m.target_ci

    def load_seconds(self) -> float:
        """Load, convert and compile together."""
        return sum(v for k, v in self.stage_seconds.items() if k in ("load", "convert", "compile"))

    def note(self) -> str:
        """The note column of every view: why a row is not ok, or what to know about its figures;
        first an injected fault, last an engine that e2e's tests have never run."""
        fault = f"FAULT INJECTED: {self.fault}" if self.fault else ""
        unverified = f"unverified: e2e's tests have never run {self.engine}" if self.verified == NEVER else ""
        return "; ".join(p for p in (fault, row_text.figures_note(self), unverified) if p)

    def verdict(self) -> str:
        if self.parity is None:
            return "reference" if self.is_reference() and self.status == "ok" else "-"
        return verdict(self.parity)


def row_key(engine: str, precision: str, point: Point = Point(), variant: str = "", machine: str = "") -> tuple:
    """What identifies a row in a run (resume) and across runs (compare)."""
    return (engine, precision, *point.key(), variant, machine)


def verdict(parity: Parity) -> str:
    return "passed" if parity.passed else "FAILED"


@dataclass
class Report(Record):
    e2e_version: str
    created: str
    command: str
    run_dir: str
    setup: Setup
    device: Device
    model: ModelInfo
    data: DataInfo
    results: List[Row] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    interrupted: bool = False
    # fleet mode: per machine kind, per node (Node.label), the node's device section and runtimes
    machines: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    schema_version: int = REPORT_SCHEMA_VERSION

    SECTIONS: ClassVar[Dict[str, Type[Section]]] = {"setup": Setup, "device": Device, "model": ModelInfo, "data": DataInfo}

    def to_dict(self) -> Dict[str, Any]:
        # each section writes itself (coordinator/report/sections.py: None left out, an old report's keys kept)
        return {**super().to_dict(), **{name: getattr(self, name).to_dict() for name in self.SECTIONS}}

    @classmethod
    def from_dict(cls, data: Any) -> "Report":
        if isinstance(data, dict):
            data = {**data, **{name: section.lift(data[name]) for name, section in cls.SECTIONS.items()
                               if name in data}}
        return super().from_dict(data)

    def reference_p50(self, precision: str = "fp32", machine: str = "") -> Optional[float]:
        """PyTorch's p50 on `machine` (a fleet's kind; "" this machine), the speed-ups' base."""
        for r in self.results:  # at the default point: a batched or throughput p50 is another figure
            if r.engine == REFERENCE and r.precision_requested == precision and r.latency_ms and \
                    r.point() == Point() and not r.variant and r.machine == machine:
                return r.latency_ms.p50
        return None

    def fault_headline(self) -> str:
        """The report's first line when a fault was injected into the run; "" otherwise."""
        return faults.headline(self.setup.faults, {r.engine: r.fault for r in self.results if r.fault})

    def machine_kinds(self) -> List[str]:
        """The fleet's machine kinds, sorted ([""]: this machine only)."""
        return sorted({r.machine for r in self.results}) or [""]

    def rows(self) -> List[Row]:
        """The rows as views list them: grouped by machine kind, each in the order they ran."""
        kinds = self.machine_kinds()
        return sorted(self.results, key=lambda r: kinds.index(r.machine))

    def speedup(self, r: Row) -> Optional[float]:
        """The row's p50 against PyTorch's on the same machine (fp32, default point)."""
        if r.rounds is not None and r.rounds.vs_reference is not None:  # paired within rounds
            return r.rounds.vs_reference.value
        ref = self.reference_p50(machine=r.machine)
        return ref / r.latency_ms.p50 if ref and r.latency_ms else None

    def task(self) -> str:
        """The model's family: detection, classification, generic."""
        return self.model.task

    def picture_input(self) -> str:
        """The test input the pictures are drawn on, relative to the run directory ("" if none)."""
        return self.data.picture_input or ""


def load_report(run_dir: Path) -> Report:
    """A run's report.json, checked: it names files that the views read, and none of them may
    lie outside the run directory (a report is data, and may come from someone else)."""
    from coordinator.errors import UsageError

    path = run_dir / "report.json" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise UsageError(f"no report.json in {run_dir}")
    report = Report.load(str(path))
    named = [(f"results[{i}].{name}", value) for i, r in enumerate(report.results)
             for name, value in (("log", r.log), ("outputs_file", r.outputs_file or ""))]
    for where, value in named + [("data.picture_input", report.picture_input())]:
        if not inside(value):
            raise UsageError(f"{path}: {where} {value!r} escapes the run directory")
    return report


def inside(relative: str) -> bool:
    """A relative path that stays below its base directory."""
    parts = Path(relative).parts
    return not Path(relative).is_absolute() and ".." not in parts

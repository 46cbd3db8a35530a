"""The report a run starts from: a new one (its setup, device, model and data sections, and the
notes that hold for every row), or the interrupted run's, resumed."""
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Set, Tuple

from coordinator import __version__
from coordinator.config import BenchConfig
from coordinator.machine import host
from coordinator.report import pictures
from coordinator.report.document import Report
from coordinator.report.setup import Setup
from coordinator.run.prepare import Prepared

INTERRUPTED = "The run was interrupted"
UNRUN = "Fleet rows not run"


def start_report(cfg: BenchConfig, prepared: Prepared, resume: Optional[Report]) -> Tuple[Report, Set[tuple]]:
    """The report, and the keys of the rows it already holds (a resumed run's: not run again)."""
    assert cfg.reporting.out is not None  # the config resolves it (absolute)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    command = " ".join(["e2e", *sys.argv[1:]])
    data, calibration = prepared.data, prepared.calibration
    report = resume or Report(
        e2e_version=__version__, created=now, command=command, run_dir=str(cfg.reporting.out),
        setup=setup(cfg), device=host.describe(), model=prepared.artifact.info,
        data=replace(data.info, inputs_path=str(data.inputs_path),
                     calibration=replace(calibration.info, inputs_path=str(calibration.inputs_path))
                     if calibration else None),
    )
    pictures.keep_input(report, cfg.reporting.out)  # the report's pictures outlive the cache
    done = {r.key() for r in report.results}
    if resume:
        report.interrupted = False
        report.notes = [n for n in report.notes if not n.startswith((INTERRUPTED, UNRUN))]
        report.notes.append(f"Resumed at {now} with `{command}`: {len(done)} row(s) were kept from the interrupted run.")
    elif prepared.artifact.info.weights.kind == "random":
        report.notes.append("Weights are seeded random (" + prepared.artifact.info.weights.detail + "): speed "
                            "and parity figures are valid, task accuracy is not meaningful.")
    model = prepared.source.model
    if not resume and model is not None and model.note:  # a zoo model not quite its name
        report.notes.append(model.note)
    why = cfg.sequential_because()
    if why and cfg.rounds.schedule == "interleaved":
        report.notes.append(f"Rows ran one after the other ({why}): each row's figures are of its own time window, "
                            "and rows compared across windows differ by the machine's drift too.")
    return report, done


def setup(cfg: BenchConfig) -> Setup:
    return Setup(
        e2e_commit=_git_commit(), config=cfg,  # the settings, once: views read them from here
        copy_policy="host<->device copies are inside the timed region for every engine",
        timed_region="one engine call on a preloaded input, monotonic clock, after warm-up; "
                     "outputs freed after the clock stops; Python's GC collected, frozen and disabled",
    )


def _git_commit() -> str:
    """The e2e checkout's commit, when e2e runs from one."""
    try:
        done = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""

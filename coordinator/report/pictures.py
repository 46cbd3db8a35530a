"""The pictures of report.html: each engine's outputs drawn on the first test input, by the
model family (`Task.picture`; detectors draw their boxes).

Bench keeps that input in the run directory (`pictures/input-0.npz`, named relative to it by
report.data.picture_input), so the page can be remade after the cache it came from is
cleared: a run directory is read on its own.
"""
from pathlib import Path
from typing import Optional

from shared.errors import ProtocolError
from shared.tensors import Sample, load_samples

from coordinator import tasks
from coordinator.report.document import Report, inside

PICTURE_INPUT = "pictures/input-0.npz"


def keep_input(report: Report, run_dir: Path) -> None:
    """The first test input of a family that draws, copied into the run directory once and
    named in the report."""
    if not draws(report) or report.picture_input() or not report.data.inputs_path:
        return
    import numpy as np

    sample = load_samples(report.data.inputs_path)[0]
    path = run_dir / PICTURE_INPUT
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # shared.tensors' layout, compressed: ~0.9 MB for a 480x640 image
        np.savez_compressed(f, **{f"0/{name}": array for name, array in sample.items()})
    report.data.picture_input = PICTURE_INPUT


def input_sample(report: Report, run_dir: Path) -> Optional[Sample]:
    """The kept input; None for a report without one (not a detector, made before inputs were
    kept), one that names a path outside its run directory, or an unreadable file."""
    relative = report.picture_input()
    if not draws(report) or not relative or not inside(relative) or not (run_dir / relative).is_file():
        return None
    try:
        return load_samples(str(run_dir / relative))[0]
    except (ProtocolError, IndexError):
        return None


def draws(report: Report) -> bool:
    family = tasks.find(report.task())
    return family is not None and family.draws


def picture(report: Report, inputs: Sample, outputs: Sample) -> Optional[str]:
    """One engine's outputs drawn on the input (base64 PNG), as the model's family draws them."""
    family = tasks.find(report.task())
    return family.picture(inputs, outputs) if family is not None else None

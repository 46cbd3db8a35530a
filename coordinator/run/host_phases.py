"""A family that pre/post-processes on the host (a YOLO pipeline): those steps timed here on a
row's outputs, beside the engine's median, and the end-to-end sum."""
from pathlib import Path

from shared.tensors import load_samples

from coordinator.model import testdata
from coordinator.report.document import Row
from coordinator.run.prepare import Prepared


def add(row: Row, prepared: Prepared, infer_ms: float, outputs: Path) -> None:
    """The row's breakdown, when its family has host steps (`Task.host_phases` says none: {})."""
    from PIL import Image

    size = tuple(prepared.artifact.info.input_size or ())
    if len(size) != 2:
        return
    # a test image to time the host steps on: the first still on disk (cached inputs may name a
    # folder since removed), else one of e2e's own photographs
    images = [p for p in map(Path, prepared.data.info.images or []) if p.is_file()] or \
        sorted(testdata.DEFAULT_IMAGES.iterdir())
    with Image.open(images[0]) as image:
        phases = prepared.artifact.family.host_phases(image.convert("RGB"), size, load_samples(str(outputs))[0])
    if phases:
        (pre, pre_ms), (post, post_ms) = phases.items()
        row.breakdown_ms = {pre: pre_ms, "inference (engine p50)": infer_ms, post: post_ms,
                            "end to end": pre_ms + infer_ms + post_ms}

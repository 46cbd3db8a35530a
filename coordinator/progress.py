"""A row's progress while its runner works: the runner writes `progress.json` in its io folder
after the first inference and after warm-up (never inside a timed loop); a thread here reads
it twice a second and shows the phase and the estimated time left."""
import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from shared.entry import PROGRESS


@contextmanager
def watch_progress(io_dir: Path, show: Callable[[str], None], every_s: float = 0.5) -> Iterator[None]:
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(every_s):
            try:
                note = json.loads((io_dir / PROGRESS).read_text())
                left = max(0.0, float(note["eta_s"]) - (time.time() - float(note["at"])))
                first_s = float(note["first_inference_ms"]) / 1e3
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not written yet (or by an older runner)
            show(f"{note['phase']}, first call {first_s:.1f} s, ~{left:.0f} s left")

    thread = threading.Thread(target=poll, name="e2e-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()

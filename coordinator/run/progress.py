"""A row's progress while its runner works: the runner writes `progress.json` in its io folder
after the first inference and after warm-up (never inside a timed loop); a thread here reads
it and shows the phase and the estimated time left — only when the note changes, and not at
all during the timed loops (the runner's figures share the machine with this process)."""
import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from shared.entry import PROGRESS


@contextmanager
def watch_progress(io_dir: Path, show: Callable[[str], None], every_s: float = 2.0) -> Iterator[None]:
    stop = threading.Event()

    def poll() -> None:
        seen = None
        while not stop.wait(every_s):
            try:
                note = json.loads((io_dir / PROGRESS).read_text())
                first_s = float(note["first_inference_ms"]) / 1e3
                eta = float(note["eta_s"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not written yet (or by an older runner)
            if note != seen:  # a new phase: one redraw, with the time left as the runner estimates it
                seen = note
                until = time.strftime("%H:%M:%S", time.localtime(float(note["at"]) + eta))
                show(f"{note['phase']}, first call {first_s:.1f} s, ~{eta:.0f} s left (until {until})")

    thread = threading.Thread(target=poll, name="e2e-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()

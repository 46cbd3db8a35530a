"""A runner's stages (setup, load, convert, compile, run): each timed, and an exception escaping
one attributed to it (the innermost), with the current stage's name written where a crash can
still be read (the launcher reads `stage_file` when the process dies)."""
import contextlib
import time
from typing import Dict, Iterator, List, Optional


class StageClock:
    def __init__(self) -> None:
        self.open: List[str] = []
        self.seconds: Dict[str, float] = {}
        self.failed: Optional[str] = None

    @contextlib.contextmanager
    def stage(self, name: str, stage_file: Optional[str]) -> Iterator[None]:
        self.open.append(name)
        if stage_file:
            with open(stage_file, "w") as f:
                f.write(name)
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self.failed = self.failed or name  # the innermost stage
            raise
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
            self.open.pop()
            if self.open:  # a sub-stage's time is not counted twice in its parent
                parent = self.open[-1]
                self.seconds[parent] = self.seconds.get(parent, 0.0) - elapsed

    def times(self) -> Dict[str, float]:
        """Seconds per finished stage (a sub-stage's time is not in its parent's)."""
        return {k: v for k, v in self.seconds.items() if k not in self.open}

"""The coordinator's end of a runner session (shared/session.py): a runner kept loaded, timed
in slices between which it waits, using nothing. Each launcher that can keep a runner resident
makes one (`Launcher.start`) and says how to tell the runner still lives and how to collect its
result once it has stopped."""
import json
import os
import select
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Dict, Optional

from shared.result import RunResult
from shared.session import CONTROL, REPLY

from coordinator.engines import Engine


class SessionEnded(Exception):
    """The runner stopped (it failed, or crashed) instead of answering: collect its result."""


class SessionTimeout(Exception):
    """The runner did not answer within the time given."""


class Session(ABC):
    """One runner in session mode. `ready()`, then `time()` as often as wanted, then `finish()`
    (or `abort()`). A launcher that keeps runners resident returns one from `Launcher.start`."""

    def __init__(self, engine: Engine, io_dir: Path, timeout: float) -> None:
        self.engine, self.io_dir, self.timeout = engine, io_dir, timeout
        self.result: Optional[RunResult] = None  # once finished

    @abstractmethod
    def ready(self) -> Optional[Dict[str, Any]]:
        """The runner's `ready` (loaded, warmed up, parity outputs taken), or None when it ended
        first (its result, from `finish`, says why: unsupported, failed, skipped)."""

    @abstractmethod
    def time(self, calls: int, start: int, repeat: bool = False, warm: bool = False,
             timeout: Optional[float] = None) -> Dict[str, Any]:
        """Time `calls` calls from input `start` (or that input `repeat`ed; `warm`: calls not
        counted in the runner's figures): the runner's reply. Raises when the runner cannot answer."""

    @abstractmethod
    def finish(self, stop: str) -> RunResult:
        """Tell the runner to stop and write its result; the result (also kept in `.result`), with
        the runner's files in `io_dir`."""

    @abstractmethod
    def abort(self, result: RunResult) -> RunResult:
        """End the session with `result` (a slice that timed out, Ctrl-C): the runner is killed."""


class PipeSession(Session):
    """A runner on this machine's kernel, spoken to through the io folder's pipes
    (shared/session.py): a child process, or a container with the folder mounted."""

    def __init__(self, engine: Engine, io_dir: Path, timeout: float) -> None:
        super().__init__(engine, io_dir, timeout)
        # Read-write, so that neither end blocks on open and the runner sees end of file only
        # when this process is gone.
        self._control = os.open(io_dir / CONTROL, os.O_RDWR)
        self._reply = os.open(io_dir / REPLY, os.O_RDWR | os.O_NONBLOCK)
        self._buffer = b""

    # -- what a launcher says -----------------------------------------------------------
    @abstractmethod
    def alive(self) -> bool:
        """Whether the runner still runs (cheap: asked twice a second while waiting)."""

    @abstractmethod
    def collect(self, timeout: float) -> RunResult:
        """Wait for the runner to exit and read what it wrote (a timeout is a result)."""

    @abstractmethod
    def kill(self) -> None:
        """Stop the runner now and everything it started."""

    # -- the protocol -------------------------------------------------------------------
    def ready(self) -> Optional[Dict[str, Any]]:
        try:
            return self._receive(self.timeout)
        except SessionEnded:
            return None

    def time(self, calls: int, start: int, repeat: bool = False, warm: bool = False,
             timeout: Optional[float] = None) -> Dict[str, Any]:
        self._send({"cmd": "time", "calls": calls, "start": start, "repeat": repeat, "warm": warm})
        return self._receive(timeout or self.timeout)

    def finish(self, stop: str) -> RunResult:
        if self.result is None:
            try:
                if self.alive():
                    self._send({"cmd": "stop", "stop": stop})
            except OSError:
                pass
            self.result = self.collect(self.timeout)
            self.close()
        return self.result

    def abort(self, result: RunResult) -> RunResult:
        self.kill()
        self.result = result
        self.close()
        return result

    def close(self) -> None:
        """Close both ends and remove the pipes: the runner has ended, and a run folder with pipes
        in it is one that `cp -r` or shutil.copytree cannot copy."""
        for fd in (self._control, self._reply):
            try:
                os.close(fd)
            except OSError:
                pass
        for name in (CONTROL, REPLY):
            (self.io_dir / name).unlink(missing_ok=True)

    def _send(self, message: Dict[str, Any]) -> None:
        os.write(self._control, (json.dumps(message) + "\n").encode())

    def _receive(self, timeout: float) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SessionTimeout(f"no answer from the runner after {timeout:.0f} s")
            readable, _, _ = select.select([self._reply], [], [], min(0.5, left))
            if readable:
                self._buffer += os.read(self._reply, 1 << 20)
            elif not self.alive():
                raise SessionEnded()
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

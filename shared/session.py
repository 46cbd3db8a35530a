"""Session mode: a runner that stays loaded and times calls when the coordinator says so.

The coordinator times every row in interleaved rounds (DESIGN: "Comparisons are made in
interleaved rounds"): each runner loads, warms up and takes its parity outputs, says `ready`,
then waits on its control channel. A `time` command gets a slice of timed calls; `stop` ends
the session and the runner writes its result as a one-shot run would.

The channel is two named pipes in the io folder, `control` (coordinator -> runner) and `reply`
(runner -> coordinator), one JSON object a line. Pipes work in every launcher that shares the
io folder: a child process, and a container with the folder bind-mounted (one kernel). A runner
blocked reading a pipe uses no CPU; the coordinator opens both ends read-write, so neither side
blocks on open, and a coordinator that dies leaves the runner an end of file (it stops).

Messages:
  runner:      {"event": "ready", "first_ms": F, "per_call_ms": C}
  coordinator: {"cmd": "time", "calls": K, "start": I, "repeat": false, "warm": false}
  runner:      {"event": "timed", "latencies_ms": [...], "input_index": [...], "wall_s": W,
                "waited_s": S, "waiting_cpu_s": U, "settle_ms": Q, "slice_cpu_s": V}
  coordinator: {"cmd": "stop", "stop": "converged" | "budget" | "count"}
"""
import json
import os
import time
from typing import Any, Dict, Optional

CONTROL, REPLY = "control", "reply"

# After a slice the runner waits until its own threads are quiet (a thread pool that spins after
# a call would take CPU from the next engine's slice): quiet = under QUIET_FRACTION of one core over
# a SETTLE_STEP_S window, waited for at most SETTLE_MAX_S.
QUIET_FRACTION = 0.05
SETTLE_STEP_S = 0.01
SETTLE_MAX_S = 1.0


def make_pipes(io_dir: str) -> None:
    """The two pipes, made by the launcher before the runner starts."""
    for name in (CONTROL, REPLY):
        path = os.path.join(io_dir, name)
        if os.path.exists(path):
            os.unlink(path)
        os.mkfifo(path)
        os.chmod(path, 0o666)  # a container's user opens them too (mkfifo's mode is masked)


def cpu_seconds() -> float:
    """This process's CPU time, every thread's, user and system."""
    t = os.times()
    return t.user + t.system


def settle() -> float:
    """Wait until this process is quiet (see QUIET_FRACTION); the milliseconds it took."""
    start = time.perf_counter()
    while time.perf_counter() - start < SETTLE_MAX_S:
        c0, w0 = cpu_seconds(), time.perf_counter()
        time.sleep(SETTLE_STEP_S)
        if cpu_seconds() - c0 <= QUIET_FRACTION * (time.perf_counter() - w0):
            break
    return (time.perf_counter() - start) * 1e3


class RunnerChannel:
    """The runner's end: read commands, write replies."""

    def __init__(self, io_dir: str) -> None:
        # The coordinator holds both pipes open read-write: neither open blocks.
        self._control = open(os.path.join(io_dir, CONTROL), "r")
        self._reply = open(os.path.join(io_dir, REPLY), "w")
        self._replied_at = time.perf_counter()
        self._replied_cpu = cpu_seconds()

    def send(self, message: Dict[str, Any]) -> None:
        self._reply.write(json.dumps(message) + "\n")
        self._reply.flush()
        self._replied_at, self._replied_cpu = time.perf_counter(), cpu_seconds()

    def receive(self) -> Optional[Dict[str, Any]]:
        """The next command, with what this process used while it waited for it (`waited_s`,
        `waiting_cpu_s`); None at end of file (the coordinator is gone)."""
        line = self._control.readline()
        if not line:
            return None
        command = json.loads(line)
        command["waited_s"] = time.perf_counter() - self._replied_at
        command["waiting_cpu_s"] = cpu_seconds() - self._replied_cpu
        return command

    def close(self) -> None:
        for f in (self._control, self._reply):
            try:
                f.close()
            except OSError:
                pass

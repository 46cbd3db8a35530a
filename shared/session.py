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
import dataclasses
import json
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from .monitor import minor_faults
from .timing import Loop, StopRule

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


@dataclasses.dataclass
class Slices:
    """What a session's slices timed, together."""

    latencies_ms: List[float] = dataclasses.field(default_factory=list)
    input_index: List[int] = dataclasses.field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    minor_faults: int = 0
    stop: str = "budget"


def serve(channel: RunnerChannel, loop: Callable[[Sequence[Any], StopRule], Loop], samples: Sequence[Any],
          per_call_ms: float) -> Slices:
    """Say ready, then time the slices asked for with `loop` (the scenario's timed loop) until
    told to stop. Each slice starts at the input the coordinator names (every row of a round
    times the same inputs), or repeats one input (the caching audit); a `warm` slice is untimed
    warm-up again (after the other rows loaded, which may have taken minutes and pushed this
    runner's pages out of memory). After a slice the runner waits for its own threads to go
    quiet before it answers, so that a pool still spinning never overlaps the next engine's
    slice; what it used while waiting is said."""
    out = Slices()
    channel.send({"event": "ready", "per_call_ms": per_call_ms})
    while True:
        command = channel.receive()
        if command is None or command.get("cmd") == "stop":
            out.stop = (command or {}).get("stop", "budget")
            return out
        n, start = len(samples), int(command.get("start", 0)) % len(samples)
        order = [samples[start]] if command.get("repeat") else list(samples[start:]) + list(samples[:start])
        cpu0, faults0 = cpu_seconds(), minor_faults()
        timed = loop(order, StopRule(int(command["calls"])))
        cpu, faults = cpu_seconds() - cpu0, minor_faults() - faults0
        settle_ms = settle()
        index = [start if command.get("repeat") else (start + i) % n for i in timed.input_index]
        # the audit's slices are the audit's, and a warm-up slice no one's: not the row's figures
        if not command.get("repeat") and not command.get("warm"):
            out.latencies_ms += timed.latencies_ms
            out.input_index += index
            out.wall_s += timed.wall_s
            out.cpu_s += cpu
            out.minor_faults += faults
        channel.send({"event": "timed", "latencies_ms": timed.latencies_ms, "input_index": index,
                      "wall_s": timed.wall_s, "slice_cpu_s": cpu, "settle_ms": settle_ms,
                      "waited_s": command["waited_s"], "waiting_cpu_s": command["waiting_cpu_s"]})

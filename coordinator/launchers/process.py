"""Run a runner as a child process of some Python interpreter, and read back what it wrote."""
import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import shared
from shared import atomic
from shared.entry import LOG, OUTPUTS, PROGRESS, RESULT, SPEC, STAGE
from shared.environment import THREAD_VARIABLES
from shared.errors import ProtocolError
from shared.session import CONTROL, REPLY, make_pipes
from shared.result import RunResult
from shared.spec import RunSpec

from coordinator.engines import Engine
from coordinator.launchers.session import PipeSession

SHARED_DIR = Path(shared.__file__).parent


def protocol_path(cache: Path) -> Path:
    """A folder holding only `shared/` (its subpackages too: shared/scenarios/): put on a runner's
    PYTHONPATH, it brings the protocol and nothing else of the coordinator's environment."""
    files = sorted(f.relative_to(SHARED_DIR) for f in SHARED_DIR.rglob("*.py") if "__pycache__" not in f.parts)
    digest = hashlib.sha256(b"".join(f.as_posix().encode() + (SHARED_DIR / f).read_bytes() for f in files))
    root = cache / "protocol" / digest.hexdigest()[:16]

    def copy(tmp: str) -> None:
        for f in files:
            (Path(tmp) / "shared" / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(SHARED_DIR / f, Path(tmp) / "shared" / f)

    atomic.ensure(str(root), copy, "The cached protocol copy")
    return root


def runner_env(threads: int, python_path: List[Path], engine_env: Sequence[Tuple[str, str]] = ()) -> dict:
    """The runner process's environment: this one, the thread count, the engine's manifest `env`
    where this environment does not set the variable (the user's choice stands)."""
    env = dict(os.environ)
    env.update({k: v for k, v in engine_env if k not in os.environ})
    env.update({k: str(threads) for k in THREAD_VARIABLES})
    env.update(PYTHONPATH=os.pathsep.join(str(p) for p in python_path), PYTHONUNBUFFERED="1",
               PYTHONNOUSERSITE="1")
    return env


def fresh_io(io_dir: Path) -> None:
    """An empty io folder: what an earlier, interrupted run left there (a result, outputs, a
    stage) must never be read as this run's."""
    io_dir.mkdir(parents=True, exist_ok=True)
    for name in (RESULT, OUTPUTS, STAGE, LOG, PROGRESS, CONTROL, REPLY):
        (io_dir / name).unlink(missing_ok=True)


def run_process(python: str, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float,
                python_path: List[Path]) -> RunResult:
    if spec.relative_paths():  # a coordinator bug, said as a row rather than a wrong file read
        return RunResult(engine.id, "failed", stage="setup", reason=f"relative paths in the spec: {spec.relative_paths()}")
    proc = _start(python, engine, spec, io_dir, python_path)
    return wait_process(proc, engine, io_dir, timeout)


def start_session(python: str, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float,
                  python_path: List[Path]) -> "ProcessSession":
    """The runner in session mode (shared/session.py), kept loaded until `finish`."""
    if spec.relative_paths():
        raise ProtocolError(f"relative paths in the spec: {spec.relative_paths()}")
    fresh_io(io_dir)
    make_pipes(str(io_dir))
    session = ProcessSession(engine, io_dir, timeout)  # the pipes open before the runner opens them
    session.proc = _start(python, engine, spec.replace(session=True), io_dir, python_path, fresh=False)
    return session


def _start(python: str, engine: Engine, spec: RunSpec, io_dir: Path, python_path: List[Path],
           fresh: bool = True) -> subprocess.Popen:
    if fresh:
        fresh_io(io_dir)
    spec.save(str(io_dir / SPEC))
    argv = [python, "-m", "shared.entry", "--runner", str(engine.runner_path), "--io", str(io_dir)]
    with open(io_dir / LOG, "wb") as log:
        # A session of its own, so a timeout or Ctrl-C stops the runner and all its children.
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=io_dir,
                                env=runner_env(spec.threads, python_path, engine.env_for(spec.concurrency)), start_new_session=True)


def wait_process(proc: subprocess.Popen, engine: Engine, io_dir: Path, timeout: float) -> RunResult:
    """The runner's result once it exits; a timeout or Ctrl-C kills it (and its children)."""
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        return RunResult(engine.id, "timeout", stage=current_stage(io_dir), reason=(
            f"no result after {timeout:.0f} s; the runner was killed (raise --timeout if it needs longer)"))
    except BaseException:  # Ctrl-C, SIGTERM: leave no runner behind
        _kill(proc)
        raise
    return read_result(engine.id, io_dir, code)


class ProcessSession(PipeSession):
    """A runner child process in session mode (the host and venv launchers)."""

    proc: subprocess.Popen

    def alive(self) -> bool:
        return self.proc.poll() is None

    def collect(self, timeout: float) -> RunResult:
        return wait_process(self.proc, self.engine, self.io_dir, timeout)

    def kill(self) -> None:
        _kill(self.proc)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def read_result(engine_id: str, io_dir: Path, exit_code: int) -> RunResult:
    """What the runner wrote, or a failed row that says how the process ended."""
    path = io_dir / RESULT
    if path.is_file():
        try:
            result = RunResult.load(str(path))
        except ProtocolError as e:
            return RunResult(engine_id, "failed", stage=current_stage(io_dir), reason=f"invalid result.json: {e}")
        name = result.outputs_file
        if name is not None and (os.path.basename(name) != name or name in ("", ".", "..")):
            # The runner (in a container: untrusted) names a file the coordinator will read.
            return RunResult(engine_id, "failed", stage="run", reason=(
                f"invalid result.json: outputs_file {result.outputs_file!r} is not a file name in the io folder"))
        return result
    if exit_code < 0:
        how = f"the runner was killed by {signal.Signals(-exit_code).name}"
    else:
        how = f"the runner exited with code {exit_code}"
    tail = last_line(io_dir / LOG)
    return RunResult(engine_id, "failed", stage=current_stage(io_dir),
                     reason=f"{how} before writing a result" + (f"; its log: {tail}" if tail else ""))


def current_stage(io_dir: Path) -> Optional[str]:
    """The stage the runner last entered (it writes it down), for a run that ended without a result."""
    try:
        return (io_dir / STAGE).read_text().strip() or None
    except OSError:
        return None


def last_line(path: Path) -> str:
    """The log's last line, or the crash's first line when faulthandler wrote some (a crash
    can crash again while dying: the first names the cause)."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    fatal = [ln for ln in lines if ln.startswith("Fatal Python error")]
    return fatal[0][:300] if fatal else lines[-1][:300] if lines else ""


def start_overhead(io_dir: Path, started_at: float) -> Optional[float]:
    """Seconds from launching to the runner's first log line ("... starting at <unix time>")."""
    try:
        with open(io_dir / LOG, errors="replace") as f:
            first = f.readline().split()
        return max(0.0, float(first[-1]) - started_at) if first[:2] == ["e2e", "runner"] else None
    except (OSError, ValueError, IndexError):
        return None

"""The part of a fleet row that runs on its node: unstage the row's files into the node's cache
(once per digest), run the row with the node's own local launcher exactly as a local `e2e bench`
would, and return what the runner wrote. Sequentially, a Ray task per row (`run_row`);
interleaved, one Ray actor per node (`NodeHost`) holding the node's rows loaded, timed in
slices as the coordinator asks.

It imports only e2e (installed on every node) and what e2e imports; the engine environments are
the node's own (its Docker images, its cache's virtualenvs)."""
import platform
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

from shared import atomic
from shared.result import RunResult
from shared.spec import RunSpec

from coordinator.launchers.ray.cluster import NodeAnswer

SENT_BACK_MB = 512  # a file of the io folder larger than this stays on the node (named in the log)


def node_cache() -> Path:
    """The node's own e2e cache: $E2E_CACHE_DIR of its Ray processes, else ~/.cache/e2e."""
    from coordinator.config import default_cache

    return default_cache()


def run_row(request: Dict[str, Any]) -> NodeAnswer:
    """`request`: engine, launcher (auto or a local launcher's name), spec (RunSpec.to_dict with
    the coordinator's paths), staged ({group digest: {"files": [names], "data": [ObjectRef]}}
    and which spec path each group stands for), timeout, memory_limit_mb."""
    from coordinator.launchers import EnvironmentFailed

    row = _Row(request)
    try:
        if row.why is not None:
            return row.answer(RunResult(row.engine.id, "skipped", reason=f"on {row.node['hostname']}: {row.why}"))
        try:
            row.launcher.prepare(row.engine)
            result = row.launcher.run(row.engine, row.spec, row.io_dir, request["timeout"])
        except EnvironmentFailed as e:
            result = RunResult.from_error(row.engine.id, e, stage="setup")
        return row.answer(result)
    finally:
        shutil.rmtree(row.io_dir, ignore_errors=True)


class _Row:
    """One row on this node: its staged files unpacked, its spec on this node's paths, the local
    launcher that runs it, and the answer sent back."""

    def __init__(self, request: Dict[str, Any]) -> None:
        import ray

        from coordinator import engines
        from coordinator.machine import host
        from coordinator.launchers import LaunchSettings, choose, create_all

        self.started = time.time()
        cache = node_cache()
        self.node = {"node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname(),
                     "e2e_python": platform.python_version()}
        self.log: List[str] = []
        paths = {role: _unstage(role, group, cache, self.log) for role, group in request["staged"].items()}
        self.spec = RunSpec.from_dict({**request["spec"], **paths,
                                       "cache_dir": str(cache / "engines" / request["spec"]["engine"])})
        self.engine = engines.discover()[request["engine"]]
        launchers = create_all(LaunchSettings(cache, request.get("memory_limit_mb"), self.log.append))
        self.launcher, self.why = choose(self.engine, request["launcher"], self.spec.device, launchers)
        if self.launcher is None and self.why is None:
            self.why = "no launcher"
        io_root = cache / "fleet" / "io"
        io_root.mkdir(parents=True, exist_ok=True)
        self.io_dir = Path(tempfile.mkdtemp(prefix=f"{self.engine.id}-", dir=io_root))
        self.device = host.describe().to_dict()

    def answer(self, result: RunResult) -> NodeAnswer:
        """What goes back to the coordinator: the result, the files the runner wrote, the log."""
        out = NodeAnswer(result=result.to_dict(), files=_files(self.io_dir, self.log), log=self.log, node=self.node,
                         device=self.device, seconds=time.time() - self.started)
        if self.why is None:
            out.launcher = self.launcher.name
            out.provenance = f"{self.launcher.provenance(self.engine)} on {self.node['hostname']}"
            described = self.launcher.describe()
            if described:
                out.runtime = {self.launcher.name: described}
        return out


class NodeHost:
    """A Ray actor on one node, holding its `e2e-bench` unit for a whole interleaved run: the
    rows the coordinator sends it are loaded there at once, each in session mode with the
    node's own launcher, and timed slice by slice as the coordinator asks, so the rows that
    share a node are compared in rounds as on one machine."""

    def __init__(self) -> None:
        self.rows: Dict[str, Any] = {}  # key -> (row, session)

    def load(self, key: str, request: Dict[str, Any]) -> Dict[str, Any]:
        """Start the row and wait until it is ready: {"ready": ...}, or {"answer": ...} when it
        ended first (skipped, no environment, failed at load)."""
        from coordinator.launchers import EnvironmentFailed

        row = _Row(request)
        if row.why is not None:
            return {"answer": self._done(row, RunResult(row.engine.id, "skipped",
                                                        reason=f"on {row.node['hostname']}: {row.why}"))}
        try:
            row.launcher.prepare(row.engine)
            session = row.launcher.start(row.engine, row.spec, row.io_dir, request["timeout"])
        except EnvironmentFailed as e:
            return {"answer": self._done(row, RunResult.from_error(row.engine.id, e, stage="setup"))}
        ready = session.ready()
        if ready is None:
            return {"answer": self._done(row, session.finish(""))}
        self.rows[key] = (row, session)
        return {"ready": ready}

    def time(self, key: str, calls: int, start: int, repeat: bool, warm: bool, timeout: float) -> Dict[str, Any]:
        return self.rows[key][1].time(calls, start, repeat=repeat, warm=warm, timeout=timeout)

    def finish(self, key: str, stop: str) -> Dict[str, Any]:
        row, session = self.rows.pop(key)
        return self._done(row, session.finish(stop))

    def abort(self, key: str, reason: str) -> Dict[str, Any]:
        row, session = self.rows.pop(key)
        return self._done(row, session.abort(RunResult(row.engine.id, "failed", stage="run", reason=reason)))

    def abort_all(self) -> None:
        """Ctrl-C on the coordinator: every runner of this node stopped (process group, container)."""
        for key in list(self.rows):
            self.abort(key, "interrupted")

    def _done(self, row: _Row, result: RunResult) -> NodeAnswer:
        try:
            return row.answer(result)
        finally:
            shutil.rmtree(row.io_dir, ignore_errors=True)


def _unstage(role: str, group: Dict[str, Any], cache: Path, log: List[str]) -> str:
    """A staged group's files in the node's cache (fetched only when absent): the path of its first."""
    import ray

    folder = cache / "fleet" / "staged" / group["digest"]
    refs = group["data"]

    def unpack(tmp: str, names: List[str] = group["files"], refs: List[Any] = refs) -> None:
        Path(tmp).mkdir()
        for name, ref in zip(names, refs):
            Path(tmp, name).write_bytes(ray.get(ref))  # fetched only when this node lacks the files

    how = atomic.ensure(str(folder), unpack, f"The staged {role}", log=log.append)
    log.append(f"{role}: {'already on this node' if how == 'hit' else 'received'} ({folder})")
    return str(folder / group["files"][0])


def _files(io_dir: Path, log: List[str]) -> Dict[str, bytes]:
    """What the runner wrote (result.json, outputs, runner.log, conversion logs), by relative path."""
    files = {}
    for path in sorted(p for p in io_dir.rglob("*") if p.is_file()):
        name = str(path.relative_to(io_dir))
        if path.stat().st_size > SENT_BACK_MB * 2**20:
            log.append(f"{name} ({path.stat().st_size / 2**20:.0f} MB) left on the node: over {SENT_BACK_MB} MB")
            continue
        files[name] = path.read_bytes()
    return files


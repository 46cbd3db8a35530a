"""The part of a fleet row that runs on its node, inside a Ray task: unstage the row's files into
the node's cache (once per digest), run the row with the node's own local launcher exactly as a
local `e2e bench` would, and return what the runner wrote.

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

SENT_BACK_MB = 512  # a file of the io folder larger than this stays on the node (named in the log)


def node_cache() -> Path:
    """The node's own e2e cache: $E2E_CACHE_DIR of its Ray processes, else ~/.cache/e2e."""
    from ..config import default_cache

    return default_cache()


def run_row(request: Dict[str, Any]) -> Dict[str, Any]:
    """`request`: engine, launcher (auto or a local launcher's name), spec (RunSpec.to_dict with
    the coordinator's paths), staged ({group digest: {"files": [names], "data": [ObjectRef]}}
    and which spec path each group stands for), timeout, memory_limit_mb."""
    import ray

    from .. import engines, host
    from ..launchers import EnvironmentFailed, LaunchSettings, choose, create_all

    started = time.time()
    cache = node_cache()
    node = {"node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname(),
            "e2e_python": platform.python_version()}
    log: List[str] = []
    paths = {}
    for role, group in request["staged"].items():
        folder = cache / "fleet" / "staged" / group["digest"]
        refs = group["data"]

        def unpack(tmp: str, names: List[str] = group["files"], refs: List[Any] = refs) -> None:
            Path(tmp).mkdir()
            for name, ref in zip(names, refs):
                Path(tmp, name).write_bytes(ray.get(ref))  # fetched only when this node lacks the files

        how = atomic.ensure(str(folder), unpack, f"The staged {role}", log=log.append)
        log.append(f"{role}: {'already on this node' if how == 'hit' else 'received'} ({folder})")
        paths[role] = str(folder / group["files"][0])
    spec = RunSpec.from_dict({**request["spec"], **paths,
                              "cache_dir": str(cache / "engines" / request["spec"]["engine"])})
    engine = engines.discover()[request["engine"]]
    launchers = create_all(LaunchSettings(cache, request.get("memory_limit_mb"), log.append))
    launcher, why = choose(engine, request["launcher"], spec.device, launchers)
    io_root = cache / "fleet" / "io"
    io_root.mkdir(parents=True, exist_ok=True)
    io_dir = Path(tempfile.mkdtemp(prefix=f"{engine.id}-", dir=io_root))
    answer: Dict[str, Any] = {"node": node, "device": host.describe().to_dict(), "launcher": "", "provenance": ""}
    try:
        if launcher is None or why:
            result = RunResult(engine.id, "skipped", reason=f"on {node['hostname']}: {why}")
        else:
            answer["launcher"] = launcher.name
            try:
                launcher.prepare(engine)
                result = launcher.run(engine, spec, io_dir, request["timeout"])
            except EnvironmentFailed as e:
                result = RunResult.from_error(engine.id, e, stage="setup")
            answer["provenance"] = f"{launcher.provenance(engine)} on {node['hostname']}"
            described = launcher.describe()
            if described:
                answer["runtime"] = {launcher.name: described}
        answer["files"] = _files(io_dir, log)
        answer["result"] = result.to_dict()
        answer["log"] = log
        answer["seconds"] = time.time() - started
        return answer
    finally:
        shutil.rmtree(io_dir, ignore_errors=True)


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


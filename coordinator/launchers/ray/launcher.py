"""`RayLauncher`: the `Launcher` of one fleet node. It stages the row's files, runs the row there
as a Ray task pinned to the node (holding its one `e2e-bench` unit), and writes back into the
row's io folder what the runner wrote there, so the coordinator reads the row as it would a
local one. The runner protocol does not change."""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from shared.result import RunResult
from shared.spec import RunSpec

from coordinator.engines import Engine
from coordinator.launchers.base import NODES, LaunchSettings, Launcher
from coordinator.launchers.process import fresh_io
from coordinator.launchers.session import Session
from coordinator.launchers.ray import node as on_node
from coordinator.launchers.ray.cluster import BENCH, Fleet, Node, NodeAnswer

# Beyond the runner's own --timeout, which the node's launcher enforces: the node may first make
# the engine's environment (minutes) and receive the staged files.
GRACE_S = 3600.0


class NodeLost(Exception):
    """The node left the cluster while it ran a row."""


class NodeFailed(Exception):
    """e2e itself failed on the node (a bug), said as the row's reason."""


class RayLauncher(Launcher):
    """Runs a row on one node of the Ray cluster, with the node's own launcher there (`node.py`
    chooses it as a local bench would, from --launcher): found by the registry as every launcher
    is, but a launcher of other machines, so made per node by the fleet (--hosts,
    coordinator/run/fleet.py), never by `create_all` nor by --launcher (registry.check)."""

    name = "ray"  # rows it ran say "ray:<the node's launcher>" (`ran_with`)
    environment = NODES  # whichever the node's own launcher makes there
    selected_by = "--hosts"
    preference = 1000  # last in listings; --launcher auto chooses among this machine's launchers only
    resident = True  # through the node's NodeHost actor

    def __init__(self, fleet: Fleet, node: Node, local: str, memory_limit_mb: Optional[int] = None) -> None:
        self.fleet, self.node, self.local, self.memory_limit_mb = fleet, node, local, memory_limit_mb
        self.lost = ""  # why the node is gone, once a row found it so
        self.in_flight: Any = None  # the running row's ObjectRef (cancelled on Ctrl-C)
        self.answer: Optional[NodeAnswer] = None  # the last row's answer from the node
        self.host: Any = None  # interleaved: the node's NodeHost actor

    @classmethod
    def create(cls, settings: LaunchSettings) -> "RayLauncher":
        """Refused: it needs a cluster and a node (`RayLauncher(fleet, node, local, ...)`)."""
        raise TypeError("a RayLauncher is made per node by the fleet (--hosts: coordinator/run/fleet.py); "
                        "create_all makes only this machine's launchers")

    def unavailable(self, engine: Engine, device: str = "cpu") -> Optional[str]:
        if self.lost:
            return self.lost
        if device != "cpu" and self.node.gpus < 1:
            return f"node {self.node.label()} of kind {self.node.kind} has no GPU in the Ray cluster"
        return None  # the rest the node decides with its own launchers (its answer says why not)

    def prepare(self, engine: Engine) -> None:
        """Nothing here: the node makes the engine's environment inside the row's task."""

    def request(self, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float) -> Dict[str, Any]:
        """What the node needs to run the row: the spec, and its files staged (once per digest)."""
        fresh_io(io_dir)
        self.answer = None
        staged = {"model_path": self.fleet.stage(_model_files(spec)),
                  "inputs_path": self.fleet.stage([Path(spec.inputs_path)])}
        if spec.calibration_path:
            staged["calibration_path"] = self.fleet.stage([Path(spec.calibration_path)])
        return {"engine": engine.id, "launcher": self.local, "spec": spec.to_dict(), "staged": staged,
                "timeout": timeout, "memory_limit_mb": self.memory_limit_mb}

    def run(self, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float) -> RunResult:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        request = self.request(engine, spec, io_dir, timeout)
        task = ray.remote(on_node.run_row).options(
            num_cpus=0, num_gpus=1 if spec.device != "cpu" else 0, resources={BENCH: 1}, max_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(self.node.node_id, soft=False),
            name=f"e2e {engine.id} {spec.precision} on {self.node.kind}")
        self.in_flight = task.remote(request)
        try:
            answer = self.wait(self.in_flight, timeout + GRACE_S)
        except NodeLost as e:
            return RunResult(engine.id, "failed", stage="run", reason=str(e))
        except NodeFailed as e:
            return RunResult(engine.id, "failed", stage="setup", reason=str(e))
        except TimeoutError as e:
            ray.cancel(self.in_flight)
            return RunResult(engine.id, "timeout", stage="run", reason=f"{e}; its task was cancelled")
        except BaseException:  # Ctrl-C: the node's launcher stops the runner (process group, container)
            ray.cancel(self.in_flight)
            raise
        finally:
            self.in_flight = None
        return self.take(answer, io_dir)

    def wait(self, ref: Any, timeout: float) -> Any:
        """`ray.get`, with what can go wrong on a node said as one of this module's errors."""
        import ray

        where = f"node {self.node.label()} of kind {self.node.kind}"
        try:
            return ray.get(ref, timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            raise TimeoutError(f"no answer from {where} after {timeout:.0f} s") from None
        except (ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError, ray.exceptions.ActorDiedError,
                ray.exceptions.ActorUnavailableError, ray.exceptions.TaskUnschedulableError,
                ray.exceptions.RaySystemError) as e:
            if _node_gone(self.fleet, self.node):
                self.lost = f"{where} left the cluster"
            raise NodeLost(f"{where} {'died' if self.lost else 'lost its worker'} during the row: {type(e).__name__}: "
                           f"{_first_line(e)}") from None
        except ray.exceptions.RayTaskError as e:  # e2e itself failed on the node: a bug, said as a row
            raise NodeFailed(f"on {where}: {_first_line(e.cause or e)}") from None

    def take(self, answer: NodeAnswer, io_dir: Path) -> RunResult:
        """The node's answer into the row's io folder, as a local runner would have left it."""
        self.answer = answer
        _unpack(answer, io_dir)
        return RunResult.from_dict(answer.result)

    def start(self, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float) -> Session:
        """The row loaded on the node by its `NodeHost` actor, which holds the node's e2e-bench
        unit until `release`: the node's rows are timed in rounds together."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if self.host is None:
            self.host = ray.remote(on_node.NodeHost).options(
                num_cpus=0, num_gpus=1 if spec.device != "cpu" else 0, resources={BENCH: 1}, max_restarts=0,
                max_concurrency=2,  # an abort_all can reach it while a call waits on a runner
                scheduling_strategy=NodeAffinitySchedulingStrategy(self.node.node_id, soft=False)).remote()
        key = io_dir.name
        request = self.request(engine, spec, io_dir, timeout)
        return RaySession(self, engine, io_dir, timeout, key, self.host.load.remote(key, request))

    def release(self) -> None:
        """The node's e2e-bench unit back (its actor ended), once its rows are done."""
        if self.host is not None:
            import ray

            try:
                ray.kill(self.host)
            except Exception:  # its node is gone already
                pass
            self.host = None

    def cancel(self) -> None:
        ref = self.in_flight
        if ref is not None:
            import ray

            ray.cancel(ref)
        if self.host is not None:  # interleaved: every runner on the node stopped, then the actor
            import ray

            try:
                ray.get(self.host.abort_all.remote(), timeout=60)
            except Exception:
                pass
            self.release()

    def describe(self) -> dict:
        return self.fleet.describe()

    def provenance(self, engine: Engine) -> str:
        return (self.answer.provenance if self.answer else "") or f"node {self.node.label()}"

    def ran_with(self) -> str:
        """The row's launcher: "ray:" and the node's local launcher that ran it."""
        local = self.answer.launcher if self.answer else ""
        return f"{self.name}:{local}" if local else self.name


def _unpack(answer: NodeAnswer, io_dir: Path) -> None:
    for name, data in answer.files.items():
        path = io_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if answer.log:
        (io_dir / "fleet.log").write_text("\n".join(answer.log) + "\n")


def _node_gone(fleet: Fleet, node: Node, seconds: float = 30.0) -> bool:
    """Whether the node left the cluster, waiting for Ray's health check to tell a dead node
    from a crashed worker on a live one."""
    import time

    deadline = time.monotonic() + seconds
    while fleet.alive(node.node_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def _model_files(spec: RunSpec) -> List[Path]:
    """The model file and what the runner reads beside it: an ONNX file's external data, a
    PyTorch model card's state dict."""
    model = Path(spec.model_path)
    beside = list(spec.model_files)
    if model.suffix == ".json":  # the card (coordinator/model/export.py)
        beside.append(json.loads(model.read_text())["state_dict"])
    return [model, *(model.parent / name for name in beside)]


def _first_line(e: BaseException) -> str:
    lines: List[str] = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return " ".join(lines[-1:] if lines else [type(e).__name__])[:300]


class RaySession(Session):
    """A row loaded on a fleet node, spoken to through the node's NodeHost actor."""

    def __init__(self, launcher: RayLauncher, engine: Engine, io_dir: Path, timeout: float, key: str,
                 loading: Any) -> None:
        super().__init__(engine, io_dir, timeout)
        self.launcher, self.key, self.loading = launcher, key, loading
        self._answer: Optional[NodeAnswer] = None  # the row ended while loading

    def ready(self) -> Optional[Dict[str, Any]]:
        try:
            loaded = self.launcher.wait(self.loading, self.timeout + GRACE_S)
        except (NodeLost, NodeFailed) as e:
            self.result = RunResult(self.engine.id, "failed", stage="load", reason=str(e))
            return None
        if "answer" in loaded:
            self._answer = loaded["answer"]
            return None
        return loaded["ready"]

    def time(self, calls: int, start: int, repeat: bool = False, warm: bool = False,
             timeout: Optional[float] = None) -> Dict[str, Any]:
        wait = timeout or self.timeout
        ref = self.launcher.host.time.remote(self.key, calls, start, repeat, warm, wait)
        return self.launcher.wait(ref, wait + 60)

    def finish(self, stop: str) -> RunResult:
        if self.result is None:
            try:
                answer = self._answer or self.launcher.wait(self.launcher.host.finish.remote(self.key, stop),
                                                            self.timeout + GRACE_S)
            except (NodeLost, NodeFailed, TimeoutError) as e:
                self.result = RunResult(self.engine.id, "failed", stage="run", reason=str(e))
            else:
                self.result = self.launcher.take(answer, self.io_dir)
        return self.result

    def abort(self, result: RunResult) -> RunResult:
        if self.result is None and self.launcher.host is not None:
            try:
                self.launcher.take(self.launcher.wait(self.launcher.host.abort.remote(self.key, result.reason), 60),
                                   self.io_dir)
            except Exception:  # the node is gone: nothing of it to stop
                pass
        self.result = result
        return result

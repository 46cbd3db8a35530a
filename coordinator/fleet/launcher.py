"""`RayLauncher`: the `Launcher` of one fleet node. It stages the row's files, runs the row there
as a Ray task pinned to the node (holding its one `e2e-bench` unit), and writes back into the
row's io folder what the runner wrote there, so the coordinator reads the row as it would a
local one. The runner protocol does not change."""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from shared.result import RunResult
from shared.spec import RunSpec

from ..engines import Engine
from ..launchers import LaunchSettings, Launcher
from ..launchers.process import fresh_io
from . import node as on_node
from .cluster import BENCH, Fleet, Node

# Beyond the runner's own --timeout, which the node's launcher enforces: the node may first make
# the engine's environment (minutes) and receive the staged files.
GRACE_S = 3600.0


class NodeLost(Exception):
    """The node left the cluster while it ran a row."""


class RayLauncher(Launcher):
    name = "ray"
    preference = 1000  # never chosen by --launcher auto: the fleet makes one per node

    def __init__(self, fleet: Fleet, node: Node, local: str, memory_limit_mb: Optional[int] = None) -> None:
        self.fleet, self.node, self.local, self.memory_limit_mb = fleet, node, local, memory_limit_mb
        self.lost = ""  # why the node is gone, once a row found it so
        self.in_flight: Any = None  # the running row's ObjectRef (cancelled on Ctrl-C)
        self.answer: Dict[str, Any] = {}  # the last row's answer from the node

    @classmethod
    def create(cls, settings: LaunchSettings) -> "RayLauncher":
        raise TypeError("a RayLauncher is made per node by the fleet (coordinator/fleet), not by the registry")

    def unavailable(self, engine: Engine, device: str = "cpu") -> Optional[str]:
        if self.lost:
            return self.lost
        if device != "cpu" and self.node.gpus < 1:
            return f"node {self.node.label()} of kind {self.node.kind} has no GPU in the Ray cluster"
        return None  # the rest the node decides with its own launchers (its answer says why not)

    def prepare(self, engine: Engine) -> None:
        """Nothing here: the node makes the engine's environment inside the row's task."""

    def run(self, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float) -> RunResult:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        fresh_io(io_dir)
        self.answer = {}
        staged = {"model_path": self.fleet.stage(_model_files(spec)),
                  "inputs_path": self.fleet.stage([Path(spec.inputs_path)])}
        if spec.calibration_path:
            staged["calibration_path"] = self.fleet.stage([Path(spec.calibration_path)])
        request = {"engine": engine.id, "launcher": self.local, "spec": spec.to_dict(), "staged": staged,
                   "timeout": timeout, "memory_limit_mb": self.memory_limit_mb}
        task = ray.remote(on_node.run_row).options(
            num_cpus=0, num_gpus=1 if spec.device != "cpu" else 0, resources={BENCH: 1}, max_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(self.node.node_id, soft=False),
            name=f"e2e {engine.id} {spec.precision} on {self.node.kind}")
        self.in_flight = task.remote(request)
        where = f"node {self.node.label()} of kind {self.node.kind}"
        try:
            answer = ray.get(self.in_flight, timeout=timeout + GRACE_S)
        except ray.exceptions.GetTimeoutError:
            ray.cancel(self.in_flight)
            return RunResult(engine.id, "timeout", stage="run", reason=(
                f"no answer from {where} after {timeout + GRACE_S:.0f} s; its task was cancelled"))
        except (ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError, ray.exceptions.ActorDiedError,
                ray.exceptions.TaskUnschedulableError, ray.exceptions.RaySystemError) as e:
            if self._gone():
                self.lost = f"{where} left the cluster"
            return RunResult(engine.id, "failed", stage="run", reason=(
                f"{where} {'died' if self.lost else 'lost its worker'} during the row: {type(e).__name__}: "
                f"{_first_line(e)}"))
        except ray.exceptions.RayTaskError as e:  # e2e itself failed on the node: a bug, said as a row
            return RunResult(engine.id, "failed", stage="setup", reason=f"on {where}: {_first_line(e.cause or e)}")
        except BaseException:  # Ctrl-C: the node's launcher stops the runner (process group, container)
            ray.cancel(self.in_flight)
            raise
        finally:
            self.in_flight = None
        self.answer = answer
        for name, data in answer["files"].items():
            path = io_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if answer.get("log"):
            (io_dir / "fleet.log").write_text("\n".join(answer["log"]) + "\n")
        return RunResult.from_dict(answer["result"])

    def _gone(self, seconds: float = 30.0) -> bool:
        """Whether the node left the cluster, waiting for Ray's health check to tell a dead node
        from a crashed worker on a live one."""
        import time

        deadline = time.monotonic() + seconds
        while self.fleet.alive(self.node.node_id):
            if time.monotonic() > deadline:
                return False
            time.sleep(1)
        return True

    def cancel(self) -> None:
        ref = self.in_flight
        if ref is not None:
            import ray

            ray.cancel(ref)

    def describe(self) -> dict:
        return self.fleet.describe()

    def provenance(self, engine: Engine) -> str:
        return self.answer.get("provenance", "") or f"node {self.node.label()}"

    def ran_with(self) -> str:
        """The row's launcher: "ray:" and the node's local launcher that ran it."""
        local = self.answer.get("launcher")
        return f"{self.name}:{local}" if local else self.name


def _model_files(spec: RunSpec) -> List[Path]:
    """The model file and what the runner reads beside it: an ONNX file's external data, a
    PyTorch model card's state dict."""
    model = Path(spec.model_path)
    beside = list(spec.model_files)
    if model.suffix == ".json":  # the card (coordinator/export.py)
        beside.append(json.loads(model.read_text())["state_dict"])
    return [model, *(model.parent / name for name in beside)]


def _first_line(e: BaseException) -> str:
    lines: List[str] = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return " ".join(lines[-1:] if lines else [type(e).__name__])[:300]

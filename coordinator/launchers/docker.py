"""Docker launcher: the engine's image, the model mounted read-only, one writable /io.

The container gets no network, a read-only root file system (a tmpfs /tmp), a non-root
user, no capabilities, `no-new-privileges`, memory and pid limits; it is removed afterwards and
its output kept as the runner's log. The GPU is passed with a DeviceRequest when asked for.
"""
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from shared.entry import LOG
from shared.environment import THREAD_VARIABLES
from shared.result import RunResult
from shared.session import make_pipes
from shared.spec import RunSpec

from coordinator.images import build as images
from coordinator.engines import Engine
from coordinator.launchers.base import LaunchSettings, Launcher
from coordinator.launchers.process import current_stage, fresh_io, read_result
from coordinator.launchers.session import PipeSession

IMAGE_UID = 1000  # the `e2e` user of every runner image
PIDS_LIMIT = 1024


class DockerLauncher(Launcher):
    """A container of the engine's image. Staging is by mounts: the model's, the inputs' and
    the calibration's folders read-only, the cache and `io_dir` (as /io) writable; the spec is
    rewritten to the container's paths, and the results land in `io_dir` through its mount."""

    name = "docker"
    environment = "docker"  # the image of the engine's Dockerfile and bake target
    resident = True
    preference = 10  # --launcher auto: the image when it is built and current, else the next

    def __init__(self, memory_limit_mb: Optional[int] = None) -> None:
        self._client: Any = None
        self._reason: Optional[str] = None
        self.memory_limit_mb = memory_limit_mb or _default_memory_mb()

    @classmethod
    def create(cls, settings: LaunchSettings) -> "DockerLauncher":
        return cls(settings.memory_limit_mb)  # the daemon is asked on first use, not here

    @property
    def client(self) -> Any:
        if self._client is None and self._reason is None:
            try:
                self._client = images.client()
            except images.DockerUnavailable as e:
                self._reason = str(e)
        return self._client

    def unavailable(self, engine: Engine, device: str = "cpu") -> Optional[str]:
        if self.environment not in engine.environments:
            return (f"{engine.name} has no Docker image (its environments: {', '.join(engine.environments)}): "
                    "rerun with --launcher auto")
        if self.client is None:
            return self._reason
        tag = images.image_tag(engine.id)
        if tag is None:
            return f"docker-bake.hcl has no target {engine.id!r}"
        try:
            image = self.client.images.get(tag)
        except Exception:
            return f"image {tag} is not built: run `e2e images build {engine.id}`"
        if (image.labels or {}).get(images.SOURCE_LABEL) != images.source_digest(engine.id):
            return (f"image {tag} was built from other code than this checkout's runners/{engine.id} and "
                    f"shared/: run `e2e images build {engine.id}`")
        if device != "cpu" and "nvidia" not in (self.client.info().get("Runtimes") or {}):
            return ("Docker has no NVIDIA runtime here (install nvidia-container-toolkit to pass GPUs "
                    "into containers)")
        return None

    def prepare(self, engine: Engine) -> None:
        pass

    def image_id(self, engine: Engine) -> str:
        """The image's tag and content id, for the report."""
        tag = images.image_tag(engine.id)
        return f"{tag}@{self.client.images.get(tag).id}"

    def provenance(self, engine: Engine) -> str:
        try:
            return self.image_id(engine)
        except Exception:  # the daemon went away after the run: the tag is still worth saying
            return str(images.image_tag(engine.id))

    def describe(self) -> dict:
        """The container runtime, for the report's device section (empty without a daemon)."""
        if self.client is None:
            return {}
        try:
            info = self.client.version()
            return {"docker": info.get("Version", ""), "api": info.get("ApiVersion", ""),
                    "runtimes": sorted((self.client.info().get("Runtimes") or {}).keys())}
        except Exception:  # the daemon went away: the report is written all the same
            return {}

    def container_options(self, engine: Engine, spec: RunSpec, io_dir: Path) -> Dict[str, Any]:
        """Everything `containers.run` gets; the spec is rewritten to the container's paths."""
        import docker

        fresh_io(io_dir)
        model, inputs = Path(spec.model_path), Path(spec.inputs_path)
        cache = Path(spec.cache_dir) if spec.cache_dir else io_dir / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        calibration = Path(spec.calibration_path) if spec.calibration_path else None
        # The container's memory limit is its cgroup's; no address-space limit on top.
        # The container is given GPU N alone (the DeviceRequest below), so CUDA, NVML and every
        # engine in it number that GPU 0: the runner must be told cuda:0, not cuda:N.
        inside = spec.replace(model_path=f"/model/{model.name}", inputs_path=f"/data/{inputs.name}",
                              cache_dir="/cache", memory_limit_mb=None,
                              calibration_path=f"/calibration/{calibration.name}" if calibration else None,
                              device="cpu" if spec.device == "cpu" else "cuda:0")
        inside.save(str(io_dir / "spec.json"))
        mounts = _mounts(model, inputs, io_dir, cache, calibration)
        gpus = [docker.types.DeviceRequest(device_ids=[str(spec.device_index)], capabilities=[["gpu"]])] \
            if spec.device != "cpu" else []
        return dict(
            image=images.image_tag(engine.id), detach=True, mounts=mounts, network_mode="none",
            user=_writable_by_container(io_dir, cache), read_only=True, tmpfs={"/tmp": "rw,nosuid,size=2g"},
            cap_drop=["ALL"], security_opt=["no-new-privileges"], mem_limit=f"{self.memory_limit_mb}m",
            memswap_limit=f"{self.memory_limit_mb}m", pids_limit=PIDS_LIMIT, device_requests=gpus,
            environment=_environment(spec.threads, engine.env_for(spec.concurrency)), labels={"e2e.engine": engine.id, "e2e.io": str(io_dir.resolve())},
        )

    def run(self, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float) -> RunResult:
        return record_physical_device(self._run(engine, spec, io_dir, timeout), spec)

    def _run(self, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float) -> RunResult:
        container = self.client.containers.run(**self.container_options(engine, spec, io_dir))
        return self._collect(container, engine, io_dir, lambda: container.wait(timeout=timeout)["StatusCode"], timeout)

    def start(self, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float) -> PipeSession:
        """The container stays up between slices; the pipes are in its /io mount."""
        options = self.container_options(engine, spec.replace(session=True), io_dir)
        make_pipes(str(io_dir))
        session = ContainerSession(engine, io_dir, timeout)
        session.container = self.client.containers.run(**options)
        session.collect_with = lambda t: record_physical_device(
            self._collect(session.container, engine, io_dir, lambda: session.exit_code(t), t), spec)
        session.watch()
        return session

    def _collect(self, container: Any, engine: Engine, io_dir: Path, wait: Callable[[], int],
                 timeout: float) -> RunResult:
        """The container's exit (`wait` gives its code), logs, memory verdict and result; it is
        removed whatever happens."""
        import requests

        try:
            try:
                code = wait()
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError, TimeoutError):
                container.kill()
                _save_logs(container, io_dir)
                return RunResult(engine.id, "timeout", stage=current_stage(io_dir), reason=(
                    f"no result after {timeout:.0f} s; the container was killed (raise --timeout if it needs longer)"))
            except BaseException:  # Ctrl-C, SIGTERM: leave no container behind
                container.kill()
                raise
            _save_logs(container, io_dir)
            container.reload()
            if container.attrs["State"].get("OOMKilled"):
                return RunResult(engine.id, "failed", stage=current_stage(io_dir), reason=(
                    f"out of memory: the container was OOM-killed at its {self.memory_limit_mb} MB limit"))
            # A container killed by a signal exits 128 + the signal number.
            return read_result(engine.id, io_dir, -(code - 128) if code > 128 and code - 128 in
                               signal.valid_signals() else code)
        finally:
            container.remove(force=True)


def _mounts(model: Path, inputs: Path, io_dir: Path, cache: Path, calibration: Optional[Path]) -> List[Any]:
    """The model's, the inputs' and the calibration's folders read-only; /io and /cache writable."""
    import docker

    mounts = [
        docker.types.Mount("/model", str(model.parent.resolve()), type="bind", read_only=True),
        docker.types.Mount("/data", str(inputs.parent.resolve()), type="bind", read_only=True),
        docker.types.Mount("/io", str(io_dir.resolve()), type="bind"),
        docker.types.Mount("/cache", str(cache.resolve()), type="bind"),
    ]
    if calibration:
        mounts.append(docker.types.Mount("/calibration", str(calibration.parent.resolve()), type="bind", read_only=True))
    return mounts


class ContainerSession(PipeSession):
    """A runner container kept up between slices. A thread waits on the container's exit (a
    blocking call to the daemon: nothing polls while other rows are timed)."""

    container: Any
    collect_with: Callable[[float], RunResult]

    def watch(self) -> None:
        self._exited = threading.Event()
        self._code: List[int] = []

        def wait() -> None:
            try:
                self._code.append(self.container.wait()["StatusCode"])
            except Exception:
                self._code.append(-int(signal.SIGKILL))
            self._exited.set()

        threading.Thread(target=wait, daemon=True, name=f"wait-{self.engine.id}").start()

    def exit_code(self, timeout: Optional[float] = None) -> int:
        if not self._exited.wait(timeout if timeout is not None else self.timeout):
            raise TimeoutError()
        return self._code[0]

    def alive(self) -> bool:
        return not self._exited.is_set()

    def collect(self, timeout: float) -> RunResult:
        return self.collect_with(timeout)

    def kill(self) -> None:
        try:
            self.container.remove(force=True)  # killed and removed: no container is left behind
        except Exception:  # already gone
            pass


def record_physical_device(result: RunResult, spec: RunSpec) -> RunResult:
    """The row says which of the host's GPUs it ran on: the runner saw it as cuda:0 (the only
    GPU passed into its container), so its result cannot say; `spec` is the host's spec."""
    if spec.device != "cpu":
        result.settings["physical_device"] = spec.device
        if "device_id" in result.settings:  # OpenPPL records the CUDA ordinal it used: 0 in the container
            result.settings["device_id"] = spec.device_index
    return result


def _environment(threads: int, engine_env: Sequence[Tuple[str, str]] = ()) -> Dict[str, str]:
    """The container's variables: the thread count and the engine's manifest `env` (the user's own
    environment does not reach a container, except through these: a variable the user set wins)."""
    env = {k: os.environ.get(k, v) for k, v in engine_env}
    env.update({k: str(threads) for k in THREAD_VARIABLES})
    env["HOME"] = "/tmp"  # the root file system is read-only; engines that write to ~ get /tmp
    return env


def _writable_by_container(*folders: Path) -> str:
    """Run as the caller's uid when it is not root (its files stay its own); as root, run as
    the image's non-root user and hand it the writable folders."""
    uid, gid = os.getuid(), os.getgid()
    if uid != 0:
        return f"{uid}:{gid}"
    for folder in folders:
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, IMAGE_UID, IMAGE_UID)
    return f"{IMAGE_UID}:{IMAGE_UID}"


def _save_logs(container: Any, io_dir: Path) -> None:
    (io_dir / LOG).write_bytes(container.logs(stdout=True, stderr=True))


def _default_memory_mb() -> int:
    import psutil

    return int(psutil.virtual_memory().total / 2**20 * 0.8)

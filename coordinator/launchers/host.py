"""The host launcher: the coordinator's own Python, for the PyTorch reference, which needs
torch and the model code the coordinator already has."""
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Optional

from shared.result import RunResult
from shared.spec import RunSpec

from coordinator.engines import Engine
from coordinator.launchers.base import LaunchSettings, Launcher
from coordinator.launchers.process import protocol_path, run_process, start_session
from coordinator.launchers.session import Session


class HostLauncher(Launcher):
    """A child process of the coordinator's interpreter. Nothing is staged: the runner reads
    the spec's host paths and writes into `io_dir` on the same disk."""

    name = "host"
    environment = "host"  # the coordinator's own interpreter: nothing is made
    preference = 0
    pinned = True  # the reference needs the coordinator's Python whatever --launcher asks
    resident = True

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    @classmethod
    def create(cls, settings: LaunchSettings) -> "HostLauncher":
        return cls(settings.cache_dir)

    def unavailable(self, engine: Engine, device: str = "cpu") -> Optional[str]:
        if self.environment in engine.environments:
            return None
        return (f"{engine.name} does not run in the host Python (its environments: {', '.join(engine.environments)}): "
                "rerun with --launcher auto")

    def prepare(self, engine: Engine) -> None:
        pass

    def run(self, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float) -> RunResult:
        # The working directory is on the path so `--model package.module:factory` imports.
        return run_process(sys.executable, engine, spec, io_dir, timeout,
                           [protocol_path(self.cache), Path.cwd()])

    def start(self, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float) -> Session:
        return start_session(sys.executable, engine, spec, io_dir, timeout, [protocol_path(self.cache), Path.cwd()])

    def describe(self) -> dict:
        return {}  # the host is the device section itself

    def provenance(self, engine: Engine) -> str:
        try:
            torch = metadata.version("torch")
        except metadata.PackageNotFoundError:
            torch = "not installed"
        return f"{sys.executable} (Python {platform.python_version()}, torch {torch})"

"""A row ready to start, as every schedule starts one."""
from dataclasses import dataclass
from pathlib import Path

from shared.result import RunResult
from shared.spec import RunSpec
from shared.errors import one_line

from coordinator.engines import Engine
from coordinator.launchers import Launcher
from coordinator.run.points import Point


@dataclass
class Launch:
    """A row ready to start: its runner's launcher and spec, and what the row will say of its input."""

    engine: Engine
    precision: str
    point: Point
    launcher: Launcher
    spec: RunSpec
    io_dir: Path
    model_path: Path
    row_input: str


def launcher_failed(engine: Engine, launcher: Launcher, e: BaseException) -> RunResult:
    return RunResult(engine.id, "failed", stage="setup", reason=(
        f"{launcher.name} launcher: {type(e).__name__}: {one_line(e)}"))

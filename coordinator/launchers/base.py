"""The `Launcher` interface: where a runner runs. A launcher is one module in this package, or
a folder of modules (`ray/`), defining a subclass of `Launcher`; the registry finds it, and it may
run every engine whose manifest declares the environment it uses (`environment`): a new launcher
that uses an existing kind of environment needs no manifest edit.

A launcher of this machine runs runners here in an environment of its kind and is picked by
`--launcher`. A launcher of other machines (`environment = NODES`: the Ray launcher) runs each row
on one of them with that machine's own launcher, picked there by the same policy: it makes no
environment itself, is made per machine by the option that names the machines (`selected_by`:
`--hosts`), and `--launcher` then picks the machines' own launcher."""
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Optional

from shared.errors import E2EError
from shared.result import RunResult
from shared.spec import RunSpec

from coordinator.engines import Engine
from coordinator.launchers.session import Session


# The `environment` of a launcher of other machines: whichever the machine's own launcher makes there.
NODES = "nodes"


class EnvironmentFailed(E2EError):
    """The engine's environment could not be made; its row fails at setup."""


@dataclass(frozen=True)
class LaunchSettings:
    """What the bench tells every launcher it makes (`Launcher.create`)."""

    cache_dir: Path  # environments, the protocol copy, engine caches
    memory_limit_mb: Optional[int] = None  # --memory-limit: per engine run
    log: Callable[[str], None] = print  # progress messages (an environment being made)


class Launcher(ABC):
    """Runs one engine's runner somewhere, through the runner protocol (`shared/`).

    The launcher decides *where*; the runner decides *how*. A launcher never imports an engine.
    """

    name: ClassVar[str]  # the --launcher value (a launcher of this machine); the report's `launcher` column
    # The kind of environment it runs a runner in (one of coordinator.engines.ENVIRONMENTS): it may
    # run the engines whose manifest's `environments` declare it. NODES: a launcher of other machines.
    environment: ClassVar[str]
    # The option that picks it: --launcher, or for a launcher of other machines the one naming them.
    selected_by: ClassVar[str] = "--launcher"
    # `--launcher auto` tries the launchers that may run an engine in this order, lowest first.
    preference: ClassVar[int] = 100
    # An engine that declares a pinned launcher's environment runs on it whatever --launcher asks.
    pinned: ClassVar[bool] = False
    # Whether `start` keeps a runner loaded for interleaved rounds.
    resident: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def create(cls, settings: LaunchSettings) -> "Launcher":
        """The launcher the bench (or `e2e engines`) uses. Cheap: no daemon is asked, no
        environment made (that is `unavailable` and `prepare`)."""

    @abstractmethod
    def unavailable(self, engine: Engine, device: str = "cpu") -> Optional[str]:
        """Why this launcher cannot run `engine` on `device` here, with what to do about it;
        None when it can. Starts nothing, makes no environment."""

    @abstractmethod
    def prepare(self, engine: Engine) -> None:
        """Make the engine's environment, once (later calls reuse it); raise
        `EnvironmentFailed` saying why it could not be made."""

    @abstractmethod
    def run(self, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float) -> RunResult:
        """Run the runner on `spec` and return its result; never raise for what the runner did
        (a crash, a hang past `timeout`, a bad result.json): those are results.

        `spec` names host paths (model, inputs, calibration, cache). Staging is the launcher's
        job: it makes them readable by the runner and brings `result.json`, `outputs.npz` and
        `runner.log` back into `io_dir`, from which the coordinator reads them."""

    def start(self, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float) -> "Session":
        """Start the runner in session mode (shared/session.py): loaded, warmed up, then timed in
        slices while it stays resident, for the interleaved rounds. Staging as in `run`; each
        answer of the session waits at most `timeout`. A launcher that cannot keep a runner
        resident leaves `resident` False and its rows run one after the other."""
        raise NotImplementedError(f"the {self.name} launcher cannot keep a runner resident")

    @abstractmethod
    def describe(self) -> dict:
        """The runtime, for the report's device section (a daemon's version); {} when there
        is nothing to say beyond the host."""

    @abstractmethod
    def provenance(self, engine: Engine) -> str:
        """The environment a row of `engine` ran in, for the report: enough to find it again."""

"""The virtualenv launcher: one environment per engine, made on first use from its pinned
requirements and reused while they and the Python stay the same."""
import csv
import hashlib
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set

from shared import atomic, faults
from shared.result import RunResult
from shared.spec import RunSpec

from ..engines import Engine
from .base import EnvironmentFailed, LaunchSettings, Launcher
from .process import last_line, protocol_path, run_process, start_session
from .session import Session

READY = ".e2e-ready"


class VenvLauncher(Launcher):
    """A child process of the engine's own virtualenv's Python, with only `shared/` of the
    coordinator on its path. Nothing is staged: the runner reads the spec's host paths and
    writes into `io_dir` on the same disk."""

    name = "venv"
    preference = 20  # after Docker: an image is the more isolated environment
    resident = True

    def __init__(self, cache: Path, log: Callable[[str], None] = print) -> None:
        self.cache = cache
        self.log = log
        self.checked: Set[str] = set()  # engines whose environment this process found whole

    @classmethod
    def create(cls, settings: LaunchSettings) -> "VenvLauncher":
        return cls(settings.cache_dir, settings.log)

    def unavailable(self, engine: Engine, device: str = "cpu") -> Optional[str]:
        if "venv" in engine.launchers:
            return None
        why = f" ({engine.note})" if engine.note else ""
        if "docker" in engine.launchers:
            return (f"{engine.name} runs only in its Docker image{why}: build it with "
                    f"`e2e images build {engine.id}`; --launcher auto or docker then runs it")
        return f"{engine.name} has no virtualenv{why}"

    def env_dir(self, engine: Engine) -> Path:
        """One environment per set of pins and Python: engines pinning the same packages share it
        (TorchScript's and Inductor's are both torch + torchvision, 5.5 GB each otherwise). Named
        after the first package pinned, keyed by every pin."""
        pins = requirement_lines(engine.requirements_path)
        key = hashlib.sha256("\n".join(sorted(pins) + [sys.version]).encode()).hexdigest()[:12]
        label = re.split(r"[<>=!~\[; ]", pins[0], maxsplit=1)[0].lower() if pins else engine.id
        return self.cache / "venvs" / f"{label}-{key}"

    def python(self, engine: Engine) -> str:
        return str(self.env_dir(engine) / "bin" / "python")

    def prepare(self, engine: Engine) -> None:
        folder = self.env_dir(engine)
        if engine.id in self.checked:
            return
        with atomic.locked(str(folder)):  # two runs may create the same environment at once
            why = broken(folder, engine.requirements_path)
            if why is None:
                self.checked.add(engine.id)
                (folder / READY).touch()  # last used: `e2e cache clear --older-than` keeps it
                return
            if why != atomic.ABSENT:
                self.log(f"The {engine.id} environment in {folder} is {why}: creating it again")
            shutil.rmtree(folder, ignore_errors=True)
            self.log(f"Creating the {engine.id} environment from {engine.requirements_path.name} "
                     f"(once; cached in {folder})...")
            log_path = folder.with_suffix(".log")
            with open(log_path, "wb") as log:
                for argv in _install_commands(folder, engine.requirements_path):
                    if subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
                        raise EnvironmentFailed(f"could not create the {engine.id} environment: "
                                                f"{last_line(log_path)} (full log: {log_path})")
            faults.kill_at("venv")  # the hook: installed, not yet marked ready
            atomic.write_text(str(folder / READY), "")
            self.checked.add(engine.id)

    def run(self, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float) -> RunResult:
        return run_process(self.python(engine), engine, spec, io_dir, timeout, [protocol_path(self.cache)])

    def start(self, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float) -> Session:
        return start_session(self.python(engine), engine, spec, io_dir, timeout, [protocol_path(self.cache)])

    def describe(self) -> dict:
        return {}  # the venvs use the coordinator's Python, which the device section names

    def provenance(self, engine: Engine) -> str:
        requirements = hashlib.sha256(engine.requirements_path.read_bytes()).hexdigest()[:12]
        return f"{self.env_dir(engine)} (requirements.txt sha256 {requirements}, Python {platform.python_version()})"


def requirement_lines(path: Path) -> List[str]:
    """The requirement lines of a requirements file, without comments and blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def _install_commands(folder: Path, requirements: Path) -> List[List[str]]:
    python = str(folder / "bin" / "python")
    uv = shutil.which("uv")
    if uv:
        return [[uv, "venv", "--quiet", "--python", sys.executable, str(folder)],
                [uv, "pip", "install", "--quiet", "--python", python, "-r", str(requirements)]]
    return [[sys.executable, "-m", "venv", str(folder)],
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)]]


def broken(folder: Path, requirements: Path) -> Optional[str]:
    """None when the environment is whole: marked ready after its install, with every file that
    the pinned distributions installed there (bytecode aside) at its installed size (from their
    RECORD; a stat per file, no import). Else what is wrong, atomic.ABSENT when there is none."""
    if not folder.exists():
        return atomic.ABSENT
    if not (folder / READY).is_file():
        return "not marked ready (its creation was interrupted)"
    if not (folder / "bin" / "python").exists():
        return "missing its Python"
    installed: Dict[str, Path] = {}
    for site in folder.glob("lib/python*/site-packages"):
        for info in site.glob("*.dist-info"):
            installed[_normal(info.name.split("-")[0])] = info
    for name in _pinned(requirements):
        info = installed.get(_normal(name))
        if info is None:
            return f"missing {name}"
        try:
            with open(info / "RECORD", newline="") as f:
                rows = list(csv.reader(f))
        except OSError:
            return f"missing {name}'s RECORD"
        for row in rows:  # compiled bytecode is rewritten whenever Python finds it stale: not a damage
            if len(row) == 3 and row[2] and not row[0].endswith(".pyc"):
                path = info.parent / row[0]
                try:
                    size = path.stat().st_size
                except OSError:
                    return f"missing {name}'s {row[0]}"
                if str(size) != row[2]:
                    return f"damaged: {name}'s {row[0]} has {size} bytes, {row[2]} when installed"
    return None


def _pinned(requirements: Path) -> List[str]:
    """The distributions requirements.txt pins (`name[extras]==version`)."""
    names = []
    for line in requirements.read_text().splitlines():
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^]]*\])?\s*==", line.split("#")[0])
        if m:
            names.append(m.group(1))
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()

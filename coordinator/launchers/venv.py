"""The virtualenv launcher: one environment per engine, made on first use from its pinned
requirements and reused while they and the Python stay the same.

uv makes them (pip when uv cannot be found), with the user's pip settings carried over
(`pipconf.py`), and installs by hard links from its cache inside e2e's cache: a file that
several environments install (PyTorch's 5 GB above all) is stored once on disk."""
import csv
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set

from shared import atomic, faults
from shared.result import RunResult
from shared.spec import RunSpec

from coordinator.engines import Engine
from coordinator.launchers.base import EnvironmentFailed, LaunchSettings, Launcher
from coordinator.launchers.process import last_line, protocol_path, run_process, start_session
from coordinator.launchers.session import Session

READY = ".e2e-ready"  # written last; holds the tool that made the environment
NO_DEPS = "requirements-nodeps.txt"  # installed without their dependencies (pnnx's wheel requires torch; its binary does not)


class VenvLauncher(Launcher):
    """A child process of the engine's own virtualenv's Python, with only `shared/` of the
    coordinator on its path. Nothing is staged: the runner reads the spec's host paths and
    writes into `io_dir` on the same disk."""

    name = "venv"
    environment = "venv"  # made from the engine folder's requirements.txt
    preference = 20  # after Docker: an image is the more isolated environment
    resident = True

    def __init__(self, cache: Path, log: Callable[[str], None] = print) -> None:
        self.cache = cache
        self.log = log
        self.checked: Set[str] = set()  # engines whose environment this process found whole
        self.failed: Dict[str, EnvironmentFailed] = {}  # made ahead in a thread and failed: said once, not retried
        self.guard = threading.Lock()
        self.making: Dict[str, threading.Lock] = {}  # one thread makes an environment; the others wait for it
        self.stopping = threading.Event()  # set: installs under way are ended, and none starts (a bench that failed)

    @classmethod
    def create(cls, settings: LaunchSettings) -> "VenvLauncher":
        return cls(settings.cache_dir, settings.log)

    def unavailable(self, engine: Engine, device: str = "cpu") -> Optional[str]:
        if self.environment in engine.environments:
            return None
        why = f" ({engine.note})" if engine.note else ""
        if "docker" in engine.environments:
            return (f"{engine.name} runs only in its Docker image{why}: build it with "
                    f"`e2e images build {engine.id}`; --launcher auto or docker then runs it")
        return f"{engine.name} has no virtualenv{why}"

    def env_dir(self, engine: Engine) -> Path:
        """One environment per set of pins and Python: engines pinning the same packages share it
        (TorchScript's and Inductor's are both torch + torchvision, 5.5 GB each otherwise). Named
        after the first package pinned, keyed by every pin."""
        pins = requirement_lines(engine.requirements_path)
        unpinned = engine.requirements_path.with_name(NO_DEPS)
        extra = [f"--no-deps {line}" for line in requirement_lines(unpinned)] if unpinned.is_file() else []
        key = hashlib.sha256("\n".join(sorted(pins) + sorted(extra) + [sys.version]).encode()).hexdigest()[:12]
        label = re.split(r"[<>=!~\[; ]", pins[0], maxsplit=1)[0].lower() if pins else engine.id
        return self.cache / "venvs" / f"{label}-{key}"

    def python(self, engine: Engine) -> str:
        return str(self.env_dir(engine) / "bin" / "python")

    def prepare(self, engine: Engine) -> None:
        """Make the engine's environment unless it is whole. Thread-safe: a bench makes its
        environments ahead in threads (`envs.py`) and a row's own call waits for that one."""
        folder = self.env_dir(engine)
        with self.guard:
            making = self.making.setdefault(folder.name, threading.Lock())
        with making:
            if engine.id in self.failed:
                raise self.failed[engine.id]
            try:
                self._prepare(engine, folder)
            except EnvironmentFailed as e:
                self.failed[engine.id] = e
                raise

    def _prepare(self, engine: Engine, folder: Path) -> None:
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
            install = install_plan(folder, engine.requirements_path, self.cache)
            self.log(f"Creating the {engine.id} environment from {engine.requirements_path.name} with {install.tool} "
                     f"(once; cached in {folder})...")
            log_path = folder.with_suffix(".log")
            with open(log_path, "wb") as log:
                log.write(f"made by {install.tool}\n".encode())
                log.flush()
                for argv in install.commands:
                    log.write(("$ " + " ".join(argv) + "\n").encode())
                    log.flush()
                    if self._install(argv, log, install.env) != 0:
                        raise EnvironmentFailed(f"could not create the {engine.id} environment with {install.tool}: "
                                                f"{last_line(log_path)} (full log: {log_path})")
            faults.kill_at("venv")  # the hook: installed, not yet marked ready
            atomic.write_text(str(folder / READY), install.tool + "\n")
            self.checked.add(engine.id)

    def _install(self, argv: List[str], log: Any, env: Dict[str, str]) -> int:
        """One install command's exit status; ended early when `stopping` is set."""
        if self.stopping.is_set():
            raise EnvironmentFailed("cancelled: the bench stopped before its environments were made")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        while True:
            try:
                return process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if self.stopping.is_set():
                    process.terminate()
                    process.wait()
                    raise EnvironmentFailed("cancelled: the bench stopped before its environments were made") from None

    def run(self, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float) -> RunResult:
        return run_process(self.python(engine), engine, spec, io_dir, timeout, [protocol_path(self.cache)])

    def start(self, engine: Engine, spec: RunSpec, io_dir: Path, timeout: float) -> Session:
        return start_session(self.python(engine), engine, spec, io_dir, timeout, [protocol_path(self.cache)])

    def describe(self) -> dict:
        return {}  # the venvs use the coordinator's Python, which the device section names

    def provenance(self, engine: Engine) -> str:
        requirements = hashlib.sha256(engine.requirements_path.read_bytes()).hexdigest()[:12]
        folder = self.env_dir(engine)
        return (f"{folder} (requirements.txt sha256 {requirements}, Python {platform.python_version()}, "
                f"made by {made_by(folder)})")


def made_by(folder: Path) -> str:
    """The tool that made an environment, as its ready mark says (empty: made before it said)."""
    try:
        return (folder / READY).read_text().strip() or "pip or uv (not recorded)"
    except OSError:
        return "unknown (not made)"


def requirement_lines(path: Path) -> List[str]:
    """The requirement lines of a requirements file, without comments and blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


@dataclass
class Install:
    tool: str  # "uv 0.x.y" or "pip"
    commands: List[List[str]]
    env: Dict[str, str] = field(default_factory=dict)


def uv_binary() -> Optional[str]:
    """uv from its wheel (a dependency of e2e), else from PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def install_plan(folder: Path, requirements: Path, cache: Path) -> Install:
    """The commands that make `folder` from `requirements`: uv with pip's settings and hard links
    from its cache in `cache/uv` (same file system as the environments, so links can be made),
    else venv + pip. E2E_INSTALLER=pip forces pip."""
    python = str(folder / "bin" / "python")
    unpinned = requirements.with_name(NO_DEPS)
    uv = uv_binary() if os.environ.get("E2E_INSTALLER", "uv") != "pip" else None
    if uv:
        from coordinator.launchers import pipconf

        settings = pipconf.read()
        env = {**os.environ, **settings.uv_environment(), "UV_CACHE_DIR": str(cache / "uv"),
               "UV_LINK_MODE": "hardlink", "UV_PYTHON_DOWNLOADS": "never"}
        version = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.split()
        install = [uv, "pip", "install", "--quiet", "--python", python, *settings.uv_arguments()]
        commands = [[uv, "venv", "--quiet", "--python", sys.executable, str(folder)],
                    install + ["-r", str(requirements)]]
        if unpinned.is_file():
            commands.append(install + ["--no-deps", "-r", str(unpinned)])
        return Install(f"uv {version[1] if len(version) > 1 else ''}".strip(), commands, env)
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    commands = [[sys.executable, "-m", "venv", str(folder)], pip + ["-r", str(requirements)]]
    if unpinned.is_file():
        commands.append(pip + ["--no-deps", "-r", str(unpinned)])
    return Install("pip", commands, dict(os.environ))


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
    unpinned = requirements.with_name(NO_DEPS)
    for name in _pinned(requirements) + (_pinned(unpinned) if unpinned.is_file() else []):
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

"""The engine environments a bench or `e2e setup` needs: sized against the free disk before any
is made, then made side by side (mostly I/O: downloads and hard links), ahead of need.

`e2e bench` starts them before its export and waits for them before the first row loads, so
none is ever made while a timed loop runs."""
import functools
import os
import shutil
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from coordinator.engines import Engine, skip_reason
from coordinator.errors import UsageError
from coordinator.launchers import EnvironmentFailed, LaunchSettings, VenvLauncher, choose, create_all
from coordinator.launchers.venv import READY, broken, requirement_lines

MB = 1_000_000
WORKERS = 3  # at once: creation waits on the network and the disk, not on the CPU
RESERVE_MB = 1000  # kept free for the export, the inputs, the converted models and the run folder
# PyTorch with its CUDA libraries, as pip resolves torch on Linux: stored once by hard links
TORCH_MB = 5400
# Each environment's own files beside that, in MB, measured here (`e2e setup --engines all`:
# Python 3.11, x86_64, uv; the ten took 9.5 GB on disk together); GPU engines' figures are
# estimates from their wheels' sizes (no GPU here).
KNOWN_MB = {"ort": 160, "openvino": 410, "tvm": 530, "iree": 510, "mnn": 140, "ncnn": 205, "litert": 2365,
            "triton": 410, "torchscript": 215, "inductor": 215, "executorch": 560, "ort_cuda": 3600,
            "ort_trt": 3600, "trt": 3200, "torch_tensorrt": 2600}
UNKNOWN_MB = 1000  # an engine not in the table


@dataclass
class Planned:
    engine: Engine
    folder: Path
    mb: int  # what it adds on disk, PyTorch counted with the first that needs it


def needed(engines: Sequence[Engine], launcher_name: str, device: str, cache: Path,
           launchers: Optional[Dict] = None) -> List[Engine]:
    """The engines among `engines` that will run in a virtualenv here (the launcher policy of
    `choose`), on `device`, at some precision; one per environment folder."""
    launchers = launchers or create_all(LaunchSettings(cache))
    found: Dict[Path, Engine] = {}
    for engine in engines:
        launcher, why = choose(engine, launcher_name, device, launchers)
        if why or not isinstance(launcher, VenvLauncher):
            continue
        if all(skip_reason(engine, device, p) for p in engine.precisions):
            continue
        found.setdefault(launcher.env_dir(engine), engine)
    return list(found.values())


def plan(engines: Sequence[Engine], cache: Path) -> List[Planned]:
    """The environments of `engines` not yet whole in `cache`, with what each will add on disk."""
    launcher = VenvLauncher(cache, log=lambda _: None)
    torch_stored = any(_has_torch(folder) for folder in (cache / "venvs").glob("*") if (folder / READY).is_file())
    planned = []
    for engine in engines:
        folder = launcher.env_dir(engine)
        if broken(folder, engine.requirements_path) is None:
            continue
        mb = KNOWN_MB.get(engine.id, UNKNOWN_MB)
        if not torch_stored and _pins_torch(engine):
            mb, torch_stored = mb + TORCH_MB, True
        planned.append(Planned(engine, folder, mb))
    return planned


def free_mb(cache: Path) -> float:
    """Free space on the cache's disk (the nearest folder of it that exists)."""
    place = cache
    while not place.exists() and place != place.parent:
        place = place.parent
    return shutil.disk_usage(place).free / MB


def check_space(planned: Sequence[Planned], cache: Path, free: Optional[float] = None) -> None:
    """Refuse, in one line and before anything is made, environments the disk cannot hold."""
    free = free_mb(cache) if free is None else free
    need = sum(p.mb for p in planned)
    if need + RESERVE_MB <= free:
        return
    fit, used = [], 0
    for p in planned:  # in the order asked, while they fit
        if used + p.mb + RESERVE_MB <= free:
            fit.append(p.engine.id)
            used += p.mb
    raise UsageError(
        f"not enough disk for the engine environments: {', '.join(p.engine.id for p in planned)} need "
        f"{_gb(need)} GB in {cache} (and {_gb(RESERVE_MB)} GB for the run), {_gb(free)} GB is free; "
        + (f"these would fit: {', '.join(fit)} ({_gb(used)} GB)" if fit else "none of them would fit")
        + "; free some space, choose fewer --engines, or set E2E_CACHE_DIR to a larger disk")


def make(launcher: VenvLauncher, planned: Sequence[Planned], report: Callable[[str], None],
         workers: int = WORKERS) -> Dict[str, Future]:
    """Start making `planned` in `workers` threads; one line each as it ends. The futures end
    with the seconds it took, or raise EnvironmentFailed. Daemon threads: a command that
    fails meanwhile exits at once (`cancelled_on_error` ends the installs under way)."""
    waiting = list(planned)
    lock = threading.Lock()
    started, left = time.perf_counter(), [len(planned)]

    def one(p: Planned) -> float:
        started = time.perf_counter()
        try:
            launcher.prepare(p.engine)
        except EnvironmentFailed as e:
            report(f"  environment {p.engine.id:<12} failed: {e}")
            raise
        took = time.perf_counter() - started
        report(f"  environment {p.engine.id:<12} ready in {took:.0f} s ({folder_mb(p.folder):.0f} MB, "
               f"{_packages(p.folder)} packages)")
        return took

    futures: Dict[str, Future] = {p.engine.id: Future() for p in planned}

    def worker() -> None:
        while True:
            with lock:
                if not waiting:
                    return
                p = waiting.pop(0)
            future = futures[p.engine.id]
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(one(p))
            except BaseException as e:  # handed to whoever waits on it
                future.set_exception(e)
            with lock:
                left[0] -= 1
                if not left[0]:  # benchmarks/first_run.py reads this line
                    report(f"  environments: {len(planned)} made in {time.perf_counter() - started:.0f} s, "
                           f"{workers} at once")

    for n in range(min(workers, len(planned))):
        threading.Thread(target=worker, daemon=True, name=f"environment-{n + 1}").start()
    return futures


_started: List["Ahead"] = []  # the Ahead objects of the bench running in this process


def cancelled_on_error(function: Callable) -> Callable:
    """A bench that raises (a bad --weights found by the export, Ctrl-C) ends the environments it
    started making: none is left being made for a command that stopped."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        mark = len(_started)
        try:
            return function(*args, **kwargs)
        except BaseException:
            for ahead in _started[mark:]:
                ahead.cancel()
            raise
        finally:
            del _started[mark:]

    return wrapper


class Ahead:
    """A bench's environments, sized then started before its export; `wait` before timing."""

    def __init__(self, engines: Sequence[Engine], launcher_name: str, device: str, cache: Path,
                 log: Callable[[str], None], memory_limit_mb: Optional[int] = None) -> None:
        # Lines wait until the export is done (`wait`): a command that fails meanwhile says one line.
        self.lines: List[str] = []
        self.log = log
        self.guard = threading.Lock()
        # the bench's launchers: the venv launcher that makes the environments is the one its rows ask
        self.launchers = create_all(LaunchSettings(cache, memory_limit_mb, self.say))
        wanted = needed(engines, launcher_name, device, cache, self.launchers)
        planned = plan(wanted, cache)
        check_space(planned, cache)
        if planned:
            self.say(f"Making {len(planned)} engine environment(s) in {cache / 'venvs'}, {WORKERS} at once, while "
                     f"the model exports: {', '.join(p.engine.id for p in planned)} (about "
                     f"{_gb(sum(p.mb for p in planned))} GB)")
        self.venv: VenvLauncher = self.launchers["venv"]  # type: ignore[assignment]
        self.futures = make(self.venv, planned, self.say) if planned else {}
        _started.append(self)

    def say(self, line: str) -> None:
        with self.guard:
            if self.lines is None:
                self.log(line)
            else:
                self.lines.append(line)

    def cancel(self) -> None:
        for future in self.futures.values():
            future.cancel()
        self.venv.stopping.set()

    def wait(self) -> float:
        """Wait until every environment is made (or failed: its rows say so); the seconds waited."""
        with self.guard:
            for line in self.lines or []:
                self.log(line)
            self.lines = None  # type: ignore[assignment]
        started = time.perf_counter()
        for future in self.futures.values():
            try:
                future.result()
            except EnvironmentFailed:
                pass
        return time.perf_counter() - started


def folder_mb(folder: Path) -> float:
    """Bytes of the files in `folder` (apparent: hard links to uv's cache counted here too)."""
    total = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total / MB


def _packages(folder: Path) -> int:
    return sum(1 for _ in folder.glob("lib/python*/site-packages/*.dist-info"))


def _pins_torch(engine: Engine) -> bool:
    return any(line.replace(" ", "").lower().startswith("torch==") for line in requirement_lines(engine.requirements_path))


def _has_torch(folder: Path) -> bool:
    return any(folder.glob("lib/python*/site-packages/torch"))


def _gb(mb: float) -> str:
    return f"{mb / 1000:.1f}"

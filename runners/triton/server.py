"""Find a tritonserver in this environment, start it on loopback, wait for it, stop it.

Two installations are known:
- NVIDIA's image (`nvcr.io/nvidia/tritonserver:<yy.mm>-py3`): /opt/tritonserver with the native
  backends (onnxruntime, tensorrt, python, ...).
- the `nvidia-pytriton` wheel: a tritonserver binary with the python backend only, its
  libraries in `nvidia_pytriton.libs`, and one python-backend stub per Python version.
"""
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

NVIDIA_ROOT = "/opt/tritonserver"


@dataclass
class Installation:
    binary: str
    backends: Dict[str, str]  # backend name -> its folder
    origin: str  # where the server comes from, said in the row
    libraries: List[str] = field(default_factory=list)  # LD_LIBRARY_PATH entries it needs
    pytriton: bool = False  # the server bundled with nvidia-pytriton (stubs per Python version)
    stub: Optional[str] = None  # pytriton: the python-backend stub built for this Python, if any


def find() -> Optional[Installation]:
    """NVIDIA's image first (native backends), else the server bundled with nvidia-pytriton."""
    binary = os.path.join(NVIDIA_ROOT, "bin", "tritonserver")
    if os.access(binary, os.X_OK):
        folder = os.path.join(NVIDIA_ROOT, "backends")
        names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        return Installation(binary, {n: os.path.join(folder, n) for n in names}, "NVIDIA's tritonserver image")
    found = importlib.util.find_spec("pytriton")
    if found is None or not found.submodule_search_locations:
        return None
    package = list(found.submodule_search_locations)[0]
    root = os.path.join(package, "tritonserver")
    binary = os.path.join(root, "bin", "tritonserver")
    if not os.access(binary, os.X_OK):
        return None
    from importlib import metadata

    stub = os.path.join(root, "python_backend_stubs", "{}.{}".format(*sys.version_info[:2]), "triton_python_backend_stub")
    return Installation(
        binary, {"python": os.path.join(root, "backends", "python")},
        "the tritonserver bundled with nvidia-pytriton {}".format(metadata.version("nvidia-pytriton")),
        libraries=[os.path.join(os.path.dirname(package), "nvidia_pytriton.libs")], pytriton=True,
        stub=stub if os.path.isfile(stub) else None)


STUB = "triton_python_backend_stub"
# Where an image keeps its prepared python backend (runners/triton/Dockerfile makes it).
PREPARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "backends", "python")


def prepare_python_backend(installation: Installation, target: str) -> None:
    """A python backend folder: pytriton's backend library and utils with the stub built for
    this Python, as pytriton arranges it itself, so the installed package is never written to."""
    import shutil

    os.makedirs(target, exist_ok=True)
    source = installation.backends["python"]
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy(os.path.join(source, name), target)
    shutil.copy(installation.stub, os.path.join(target, STUB))


def libpython() -> str:
    """The shared libpython the python backend's stub links by name (libpython3.X.so.1.0), as
    this interpreter's own: its path, or "" when this Python has none (Debian's python3 without
    the libpython3.X package; a pyenv build without --enable-shared)."""
    name = "libpython{}.{}.so.1.0".format(*sys.version_info[:2])
    path = os.path.join(sysconfig.get_config_var("LIBDIR") or "", name)
    return path if os.path.isfile(path) else ""


def free_port() -> int:
    """A port the kernel calls free now. Another process may take it before the server binds
    it: `Server.start` retries with new ports when the log says so."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerFailed(RuntimeError):
    """The server exited or never became ready; the message ends with its log's tail."""


class Server:
    """One tritonserver process serving `repo` on 127.0.0.1, with only `protocol` enabled."""

    def __init__(self, installation: Installation, repo: str, workdir: str, protocol: str) -> None:
        self.installation = installation
        self.repo = repo
        self.workdir = workdir
        self.protocol = protocol
        self.log_path = os.path.join(workdir, "tritonserver.log")
        self.process: Optional[subprocess.Popen] = None
        self.port = 0

    def start(self, ready: Callable[[str], bool], timeout_s: float, attempts: int = 3) -> str:
        """Start the server and wait until `ready(url)` says yes; returns the url."""
        for attempt in range(attempts):
            self.port = free_port()
            self._spawn()
            try:
                return self._wait(ready, timeout_s)
            except ServerFailed:
                self.stop()
                if "address already in use" in self.log_tail().lower() and attempt + 1 < attempts:
                    continue  # the port was taken between our probe and the server's bind
                raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        inst = self.installation
        backends = inst.backends
        if inst.pytriton:  # a backend folder of our own, with the stub for this Python
            backends = {"python": self._python_backend()}
        folder = os.path.dirname(next(iter(backends.values())))
        other = "http" if self.protocol == "grpc" else "grpc"
        argv = [
            inst.binary, "--model-repository=" + self.repo, "--backend-directory=" + folder,
            # explicit: the server starts with no model; loading one then answers with its error
            "--model-control-mode=explicit", "--disable-auto-complete-config", "--strict-readiness=true",
            "--allow-{}=true".format(self.protocol), "--{}-address=127.0.0.1".format(self.protocol),
            "--{}-port={}".format(self.protocol, self.port), "--allow-{}=false".format(other),
            "--allow-metrics=false", "--exit-timeout-secs=10", "--log-verbose=0",
            # several servers may share /dev/shm (parallel tests, two runs): a name of our own
            "--backend-config=python,shm-region-prefix-name=e2e-{}".format(uuid.uuid4().hex[:12]),
        ]
        with open(self.log_path, "ab") as log:
            # Same process group as the runner: a launcher that kills the runner's group on a
            # timeout kills the server too; PDEATHSIG covers a runner killed alone.
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                            env=self._environment(), preexec_fn=_die_with_parent)

    def _python_backend(self) -> str:
        """The folder made by `prepare_python_backend` when the image was built (a container's
        /tmp is mounted noexec: the stub could not run from there), else one made now."""
        if os.path.isfile(os.path.join(PREPARED, STUB)):
            return PREPARED
        target = os.path.join(self.workdir, "backends", "python")
        if not os.path.isdir(target):
            prepare_python_backend(self.installation, target)
        return target

    def _environment(self) -> Dict[str, str]:
        env = dict(os.environ)
        # The python backend's stub links libpython3.X.so.1.0 by name; it must be this
        # interpreter's own (a pyenv Python's stub crashed on Debian's libpython3.11), so its
        # folder goes first. The stub's Python then finds its standard library by that
        # library's prefix, and this environment's packages (onnxruntime, numpy) on PYTHONPATH.
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        paths = [libdir] + self.installation.libraries + [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]
        env["LD_LIBRARY_PATH"] = ":".join(p for p in paths if p)
        site = sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]
        python_path = list(dict.fromkeys(site)) + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(python_path)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        return env

    def _wait(self, ready: Callable[[str], bool], timeout_s: float) -> str:
        url = "127.0.0.1:{}".format(self.port)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise ServerFailed("tritonserver exited with code {} before it was ready; its log: {}".format(
                    code, self.log_tail()))
            try:
                if ready(url):
                    return url
            except Exception:  # not listening yet
                pass
            time.sleep(0.1)
        raise ServerFailed("tritonserver was not ready after {:.0f} s (raise -o triton.startup_timeout_s); "
                           "its log: {}".format(timeout_s, self.log_tail()))

    def stop(self) -> Optional[int]:
        """SIGTERM (Triton unloads its models and stops its stubs), then SIGKILL after 15 s."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def pids(self) -> List[int]:
        """The server and its children (the python backend's stub), from /proc."""
        if self.process is None:
            return []
        found = [self.process.pid]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:  # "pid (comm) state ppid ...": the name may hold spaces and parentheses
                    with open("/proc/{}/stat".format(entry)) as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == self.process.pid:
                            found.append(int(entry))
                except (OSError, ValueError, IndexError):  # gone meanwhile
                    pass
        return found

    def processes(self, child: str) -> List[Dict[str, Any]]:
        """The server and its children (each called `child`), with their peak memory so far."""
        found = []
        for i, pid in enumerate(self.pids()):
            peak = peak_rss_mb(pid)
            found.append({"role": "tritonserver" if i == 0 else child, "pid": pid,
                          "peak_rss_mb": None if peak is None else round(peak, 1)})
        return found

    def log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                # without the option tables Triton prints at start (rows of | and +)
                text = [ln.rstrip() for ln in f.readlines() if ln.strip() and ln.lstrip()[:1] not in "|+"]
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty)"


def peak_rss_mb(pid: int) -> Optional[float]:
    """A process's high-water mark (VmHWM), or None when it is gone."""
    try:
        with open("/proc/{}/status".format(pid)) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the runner dies (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except Exception:
        pass

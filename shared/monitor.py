"""Resource usage read from the OS around the timed loop: nothing runs during it.

Peak RSS is the kernel's high-water mark; CPU utilisation is process CPU
time over wall time. GPU figures use nvidia-ml-py when the runner environment has it.
"""
import os
import resource
import sys
import time
from typing import Dict, Optional

from .result import Resources


class ResourceWindow:
    def __init__(self, device_index: Optional[int] = None) -> None:
        self._device_index = device_index
        self._nvml = _nvml_handle(device_index) if device_index is not None else None

    def __enter__(self) -> "ResourceWindow":
        self._cpu0 = _cpu_seconds()
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_seconds = _cpu_seconds() - self._cpu0
        self.wall_seconds = time.perf_counter() - self._wall0

    def resources(self) -> Resources:
        util = 100.0 * self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0
        return Resources(peak_rss_mb=peak_rss_mb(), cpu_util_percent=util, gpu=self._gpu())

    def _gpu(self) -> Dict[str, float]:
        if self._nvml is None:
            return {}
        pynvml, handle = self._nvml
        mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
        out = {"memory_used_mb": mem.used / 2**20}
        try:
            out["power_w"] = pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
            out["utilisation_percent"] = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except pynvml.NVMLError:
            pass
        return out


def peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a runner started from a
    # large coordinator would report the coordinator's peak.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, KiB on Linux


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _nvml_handle(index: int):  # type: ignore[no-untyped-def]
    try:
        import pynvml  # nvidia-ml-py, optional

        pynvml.nvmlInit()
        return pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:  # no library, no driver, no such device: GPU figures are simply absent
        return None

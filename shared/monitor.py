"""Resource usage read from the OS around the timed loop: nothing runs during it.

Peak RSS is the kernel's high-water mark (shared/rss.py); CPU utilisation is process CPU
time over wall time; page faults are the kernel's count of minor faults (getrusage). GPU
figures use nvidia-ml-py when the runner environment has it: the driver keeps its own buffer of utilisation and power samples, read after the loop for the
loop's time span, so nothing samples during it.
"""
import os
import resource
import time
from typing import Dict, Optional

from .result import Resources
from .rss import peak_rss_mb


# nvmlValueType_t -> the field of nvmlValue_t that holds it
VALUE_FIELDS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}


class ResourceWindow:
    def __init__(self, device_index: Optional[int] = None) -> None:
        self._device_index = device_index
        self._nvml = _nvml_handle(device_index) if device_index is not None else None

    def __enter__(self) -> "ResourceWindow":
        self._epoch_us0 = int(time.time() * 1e6)  # NVML sample timestamps are in µs since the epoch
        self._cpu0 = _cpu_seconds()
        self._faults0 = minor_faults()
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._epoch_us1 = int(time.time() * 1e6)
        self.cpu_seconds = _cpu_seconds() - self._cpu0
        self.minor_faults = minor_faults() - self._faults0
        self.wall_seconds = time.perf_counter() - self._wall0

    def resources(self) -> Resources:
        util = 100.0 * self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0
        return Resources(peak_rss_mb=peak_rss_mb(), cpu_util_percent=util, gpu=self._gpu())

    def _gpu(self) -> Dict[str, float]:
        if self._nvml is None:
            return {}
        pynvml, handle = self._nvml
        out = {"device_memory_used_mb": pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20}
        try:
            mine = [p.usedGpuMemory for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
                    if p.pid == os.getpid() and p.usedGpuMemory]
            if mine:
                out["process_memory_mb"] = mine[0] / 2**20
        except pynvml.NVMLError:
            pass
        for name, kind, scale in (("utilisation_percent", pynvml.NVML_GPU_UTILIZATION_SAMPLES, 1.0),
                                  ("power_w", pynvml.NVML_TOTAL_POWER_SAMPLES, 1e-3)):  # power in mW
            values = self._samples(pynvml, handle, kind)
            if values:
                out[name + "_mean"] = scale * sum(values) / len(values)
                out[name + "_max"] = scale * max(values)
                out[name + "_samples"] = float(len(values))
        return out

    def _samples(self, pynvml, handle, kind):  # type: ignore[no-untyped-def]
        """The driver's samples of this kind taken since the loop began."""
        try:
            value_type, samples = pynvml.nvmlDeviceGetSamples(handle, kind, self._epoch_us0)
        except pynvml.NVMLError:  # not supported on this GPU, or no sample yet
            return []
        field = VALUE_FIELDS.get(value_type, "uiVal")
        return [float(getattr(s.sampleValue, field)) for s in samples
                if self._epoch_us0 <= s.timeStamp <= self._epoch_us1]


def minor_faults() -> int:
    """This process's minor page faults so far, every thread's."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


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

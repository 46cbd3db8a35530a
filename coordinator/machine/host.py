"""Facts about the machine: the report's device section, default threads, GPU presence."""
import os
import platform
from typing import Any, Dict, List

import psutil

from shared.environment import cpu_flags, cpu_model

from coordinator.report.sections import Device, Gpu


def physical_cores() -> int:
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def nvidia_gpus() -> List[Dict[str, Any]]:
    """NVIDIA GPUs seen through NVML; empty where there is no driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            gpus.append({"index": i, "name": _text(pynvml.nvmlDeviceGetName(handle)),
                         "memory_mb": pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20,
                         "driver": driver, "cuda": f"{cuda // 1000}.{cuda % 1000 // 10}"})
        return gpus
    finally:
        pynvml.nvmlShutdown()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def describe() -> Device:
    """The report's device section."""
    return Device(
        cpu=cpu_model(), physical_cores=physical_cores(), logical_cores=os.cpu_count(), cpu_flags=cpu_flags(),
        memory_gb=round(psutil.virtual_memory().total / 2**30, 1), os=platform.platform(),
        python=platform.python_version(), gpus=[Gpu(**g) for g in nvidia_gpus()],
    )


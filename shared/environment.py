"""Where a runner ran: recorded in every result so a figure can be reproduced."""
import os
import platform
import sys
from typing import Any, Dict, List


def describe(packages: List[str]) -> Dict[str, Any]:
    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "os": platform.platform(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "in_container": os.path.exists("/.dockerenv"),
        "packages": package_versions(packages),
        "thread_env": {k: os.environ[k] for k in THREAD_VARIABLES + BINDING_VARIABLES if k in os.environ},
        "allocator_env": {k: os.environ[k] for k in ALLOCATOR_VARIABLES if k in os.environ},
    }


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TVM_NUM_THREADS")
BINDING_VARIABLES = ("OMP_PROC_BIND", "OMP_PLACES")  # where OpenMP's threads run (an engine's manifest `env`)
# glibc malloc's: whether freed memory goes back to the OS, to be faulted in again (an engine's manifest `env`)
ALLOCATOR_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "GLIBC_TUNABLES", "LD_PRELOAD")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> List[str]:
    """The instruction-set flags that decide which kernels (and precisions) engines pick."""
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8",
              "amx_fp16")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return [w for w in wanted if w in present]
    except OSError:
        pass
    return []


def package_versions(names: List[str]) -> Dict[str, str]:
    from importlib import metadata  # Python 3.8+

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out

"""The process's peak resident set size: the kernel's high-water mark and its reset, so the
timed loops' own peak can be read apart from load's and compile's (shared/measure.py). It spans
the process, where shared/monitor.py's window spans one timed loop.
"""
import resource
import sys


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


def reset_peak_rss() -> bool:
    """Start the high-water mark again from the current RSS (Linux: `5` to clear_refs), so the
    timed loops' own peak can be read apart from load and compile. False where it cannot."""
    global _RESET
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _RESET = True
    except OSError:
        _RESET = False
    return _RESET


def resets_peak_rss() -> bool:
    """Whether the last `reset_peak_rss` worked."""
    return _RESET


_RESET = False

"""The bench configuration: `BenchConfig` (bench.py), made of sections by concern (sections.py),
whose fields are the command-line options."""
from coordinator.config.bench import BenchConfig, resolve
from coordinator.config.sections import FAIL_ON, default_cache

__all__ = ["BenchConfig", "FAIL_ON", "default_cache", "resolve"]

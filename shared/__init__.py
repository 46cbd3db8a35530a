"""The runner protocol: spec/result types, timing loop, resource monitor, runner entry point.

Pure Python + numpy, Python >= 3.8: this package is copied into every runner environment.
"""
from .errors import E2EError, EngineUnavailable, ProtocolError, RunnerTimeout, UnsupportedError, one_line
from .result import ErrorInfo, Latency, Measurement, Resources, RunResult
from .runner import Runner
from .spec import PRECISIONS, RunSpec
from .tensors import Sample, load_samples, save_samples

__all__ = [
    "E2EError", "EngineUnavailable", "ProtocolError", "RunnerTimeout", "UnsupportedError", "one_line",
    "ErrorInfo", "Latency", "Measurement", "Resources", "RunResult", "Runner", "PRECISIONS", "RunSpec",
    "Sample", "load_samples", "save_samples",
]

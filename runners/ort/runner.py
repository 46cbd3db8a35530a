"""ONNX Runtime runner: the CPU execution provider.

The session, the fp16/int8 conversions and the read-back of what ran are shared with the GPU
runners `ort_cuda` and `ort_trt` (shared/ort.py), which need the `onnxruntime-gpu` wheel: it
cannot share an environment with this one's `onnxruntime`.
"""
from typing import Any, List

from shared import EngineUnavailable
from shared.ort import OrtSessionRunner


class OrtRunner(OrtSessionRunner):
    packages = ["onnxruntime", "numpy"]

    def available_impl(self) -> None:
        if self.spec.device != "cpu":
            raise EngineUnavailable("this is ONNX Runtime's CPU execution provider; on an NVIDIA GPU run the "
                                    "ort_cuda (CUDA EP) or ort_trt (TensorRT EP) engine")

    def providers(self) -> List[Any]:
        return ["CPUExecutionProvider"]

"""ONNX Runtime's CUDA execution provider, the CPU one as the fallback for nodes CUDA has no
kernel for (the row names them: `settings.nodes_by_provider`).

The session, the fp16 conversion and the read-back of what ran are shared with `ort`
(shared/ort.py); this folder brings the GPU wheel (`onnxruntime-gpu` cannot share an
environment with `onnxruntime`) and the provider's options: TF32 off, so an fp32 row computes
in fp32, and cuDNN's exhaustive convolution search (ORT's default), named in the row.
"""
from dataclasses import dataclass
from typing import Any, List

from shared import EngineUnavailable
from shared.ort import Options as SessionOptions
from shared.ort import OrtSessionRunner, load_gpu_provider

SEARCHES = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")
WHEEL = "onnxruntime-gpu (pip install -r runners/ort_cuda/requirements.txt, or the e2e-ort_cuda image)"


@dataclass
class Options(SessionOptions):
    tf32: bool = False  # use_tf32: TF32 tensor cores for fp32 Conv/MatMul (ORT's default is on)
    cudnn_conv_algo_search: str = "EXHAUSTIVE"  # cuDNN times every algorithm once per shape (ORT's default)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.tf32, bool):
            raise ValueError("tf32 must be true or false")
        if self.cudnn_conv_algo_search not in SEARCHES:
            raise ValueError("cudnn_conv_algo_search must be one of {}".format(", ".join(SEARCHES)))


class OrtCudaRunner(OrtSessionRunner):
    packages = ["onnxruntime-gpu", "nvidia-cudnn-cu13", "nvidia-cublas", "nvidia-cuda-runtime", "numpy"]
    Options = Options

    def available_impl(self) -> None:
        if self.spec.device == "cpu":
            raise EngineUnavailable("ONNX Runtime's CUDA execution provider runs only on NVIDIA GPUs; rerun with "
                                    "--device cuda on a machine with one (the CPU one is the ort engine)")
        load_gpu_provider("CUDAExecutionProvider", WHEEL)

    def providers(self) -> List[Any]:
        cuda = {"device_id": self.spec.device_index, "use_tf32": int(self.options.tf32),
                "cudnn_conv_algo_search": self.options.cudnn_conv_algo_search,
                # inputs are copied on the compute stream: run() returns once the outputs are on the host
                "do_copy_in_default_stream": 1}
        return [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]

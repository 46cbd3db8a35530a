"""Which of the server's backends a run gets (engine option `backend`, the device, the server
found), what that backend is told, and what the row says it ran."""
import json
import os
import platform
import sys
import sysconfig
from typing import Any, Callable, Dict, Optional, Tuple

from shared import EngineUnavailable

GPU_IMAGE_HINT = ("NVIDIA's tritonserver image has them: build e2e-triton from it with "
                  "`TRITON_DOCKERFILE=gpu.Dockerfile e2e images build triton` (runners/triton/README.md)")


def choose(installation: Any, gpu: bool, options: Any, libpython: Callable[[], str]) -> str:
    """The backend to run, or EngineUnavailable saying why none can and the way out."""
    if installation is None:
        raise EngineUnavailable("no tritonserver in this environment: install runners/triton/requirements.txt "
                                "(nvidia-pytriton bundles one) or use the e2e-triton image")
    have = sorted(installation.backends)
    wanted = options.backend
    if wanted == "auto":
        order = ["onnxruntime"] if gpu else ["onnxruntime", "python"]
        wanted = next((b for b in order if b in have), order[0])
    if wanted == "tensorrt" and not gpu:
        raise EngineUnavailable("Triton's tensorrt backend runs on NVIDIA GPUs only: rerun with --device cuda")
    if wanted == "python" and gpu:
        raise EngineUnavailable("the python backend here runs ONNX Runtime's CPU build: on a GPU use the "
                                "onnxruntime or tensorrt backend ({})".format(GPU_IMAGE_HINT))
    if wanted not in have:
        raise EngineUnavailable("{} has no {} backend (it has: {}); {}".format(
            installation.origin, wanted, ", ".join(have) or "none", GPU_IMAGE_HINT))
    if wanted == "python" and installation.pytriton and installation.stub is None:
        raise EngineUnavailable("nvidia-pytriton has no python-backend stub for this Python ({}); it ships "
                                "stubs for 3.8-3.13".format(platform.python_version()))
    if wanted == "python" and installation.pytriton and not libpython():
        raise EngineUnavailable(
            "the python backend's stub needs this Python's shared library libpython{0}.so.1.0 and {1} has "
            "none in {2}: install libpython{0} (Debian, Ubuntu) or use a Python built with --enable-shared".format(
                "{}.{}".format(*platform.python_version().split(".")[:2]), os.path.realpath(sys.executable),
                sysconfig.get_config_var("LIBDIR")))
    if options.tensorrt_accelerator and (wanted != "onnxruntime" or not gpu):
        raise EngineUnavailable("tensorrt_accelerator is the onnxruntime backend's, on a GPU")
    return wanted


def parameters(backend: str, model_path: str, report: str, threads: int,
               tensorrt_accelerator: bool) -> Tuple[Dict[str, str], Optional[Dict[str, str]]]:
    """The model configuration's parameters (the python backend's) and the onnxruntime backend's
    TensorRT accelerator, if asked for: fp32, as no backend is asked for less."""
    if backend == "python":
        return {"onnx_path": os.path.abspath(model_path), "report": report, "intra_op_num_threads": str(threads)}, None
    if backend == "onnxruntime" and tensorrt_accelerator:
        return {}, {"precision_mode": "FP32", "max_workspace_size_bytes": str(1 << 30)}
    return {}, None


def described(backend: str, report: str, accelerator: Optional[Dict[str, str]], threads: int,
              server_version: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The settings a loaded backend adds to the row, and its precision_detail: the python and
    onnxruntime backends run ORT on the fp32 export, the accelerator is set to precision_mode FP32
    and the tensorrt plan is built with no FP16/INT8 flag (TF32 as TensorRT's default)."""
    if backend == "python":
        with open(report) as f:
            session = json.load(f)
        summary = "python backend running onnxruntime {} inside Triton {}".format(session["onnxruntime"], server_version)
        return {"runs": summary, "onnxruntime_in_backend": session}, {
            "runs": summary, "source": "the ONNX Runtime session inside the backend",
            "input_types": session["input_types"], "providers": session["providers"]}
    if backend == "onnxruntime":
        summary = "Triton's native onnxruntime backend{}".format(
            " with ONNX Runtime's TensorRT execution provider (precision_mode FP32)" if accelerator else "")
        return {"runs": summary, "intra_op_thread_count": threads, "inter_op_thread_count": 1,
                "execution_mode": "sequential", "accelerator": accelerator or {}}, {
            "runs": summary, "source": "config.pbtxt (the backend reports nothing back)"}
    runs = "Triton's tensorrt backend on a plan built here (fp32)"
    return {"runs": runs}, {"runs": runs, "source": "the plan's builder flags (none: fp32)"}

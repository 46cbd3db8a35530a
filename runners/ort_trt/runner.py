"""ONNX Runtime's TensorRT execution provider: the subgraphs TensorRT can build become TensorRT
engines, the rest runs on the CUDA execution provider (then the CPU one); the row names the
nodes that fell back (`settings.nodes_by_provider`).

Configured as ORT's TensorRT EP documentation has it for deployment: precision by the builder
flags (`trt_fp16_enable` on the fp32 model; `trt_int8_enable` on a Q/DQ model quantized in
TensorRT's scheme, as runners/trt does), engines and kernel timings cached on disk
(`trt_engine_cache_*` under the engine cache, keyed by model, versions, precision and options;
`trt_timing_cache_*` shared by every build on this GPU), and an explicit optimization profile
spanning the test inputs' shapes, so that engines are built in `compile`, not in the first call.
The session, conversions and read-back are shared with `ort` (shared/ort.py).
"""
import dataclasses
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from shared import EngineUnavailable, atomic
from shared.ort import TENSORRT_INT8
from shared.ort import Options as SessionOptions
from shared.ort import OrtSessionRunner, load_gpu_provider
from shared.tensors import profile_shapes

TRT, CUDA = "TensorrtExecutionProvider", "CUDAExecutionProvider"
WHEELS = "onnxruntime-gpu and tensorrt-cu13 (pip install -r runners/ort_trt/requirements.txt, or the e2e-ort_trt image)"


@dataclass
class Options(SessionOptions):
    workspace_mb: int = 0  # trt_max_workspace_size; 0: TensorRT's default (all of the GPU's memory)
    builder_optimization_level: int = 3  # trt_builder_optimization_level 0-5: higher builds longer
    engine_cache: bool = True  # trt_engine_cache_enable, under the engine cache
    timing_cache: bool = True  # trt_timing_cache_enable: kernel timings reused by later builds
    profile: bool = True  # explicit min/opt/max shapes from the test inputs (off: built at the first call)
    min_subgraph_size: int = 1  # trt_min_subgraph_size: smaller TensorRT subgraphs are left to CUDA
    op_types_to_exclude: str = ""  # trt_op_types_to_exclude: op types left to CUDA, comma-separated

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("workspace_mb", "min_subgraph_size"):
            if type(getattr(self, name)) is not int or getattr(self, name) < (name == "min_subgraph_size"):
                raise ValueError("{} must be an integer >= {}".format(name, int(name == "min_subgraph_size")))
        if type(self.builder_optimization_level) is not int or not 0 <= self.builder_optimization_level <= 5:
            raise ValueError("builder_optimization_level must be one of 0, 1, 2, 3, 4, 5")
        for name in ("engine_cache", "timing_cache", "profile"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError("{} must be true or false".format(name))
        if not isinstance(self.op_types_to_exclude, str):
            raise ValueError("op_types_to_exclude must be a comma-separated list of ONNX op types")


class OrtTrtRunner(OrtSessionRunner):
    packages = ["onnxruntime-gpu", "tensorrt-cu13-libs", "nvidia-cudnn-cu13", "nvidia-cuda-runtime", "numpy"]
    Options = Options
    converted = ("int8",)  # fp16 is TensorRT's own choice per layer, allowed by trt_fp16_enable
    int8_scheme = TENSORRT_INT8
    optimised_graph = False  # TensorRT's engines are compiled nodes, which ORT cannot save

    def available_impl(self) -> None:
        if self.spec.device == "cpu":
            raise EngineUnavailable("ONNX Runtime's TensorRT execution provider runs only on NVIDIA GPUs; rerun "
                                    "with --device cuda on a machine with one")
        try:  # loads libnvinfer.so.10 and libnvonnxparser.so.10 from the tensorrt wheels, which the EP links
            import tensorrt
        except (ImportError, OSError) as e:
            raise EngineUnavailable("TensorRT cannot be imported here ({}); install {}".format(e, WHEELS)) from None
        self.tensorrt = tensorrt.__version__
        load_gpu_provider(TRT, WHEELS)

    def version_impl(self) -> str:
        import onnxruntime

        return "{} (TensorRT {})".format(onnxruntime.__version__, self.tensorrt)

    def providers(self) -> List[Any]:
        import onnxruntime

        o, device = self.options, self.spec.device_index
        trt = {"device_id": device, "trt_fp16_enable": self.spec.precision == "fp16",
               "trt_int8_enable": self.spec.precision == "int8",  # a Q/DQ model: no calibration table
               "trt_builder_optimization_level": o.builder_optimization_level,
               "trt_min_subgraph_size": o.min_subgraph_size,
               "trt_engine_cache_enable": o.engine_cache, "trt_timing_cache_enable": o.timing_cache}
        if o.workspace_mb:
            trt["trt_max_workspace_size"] = o.workspace_mb << 20
        if o.op_types_to_exclude:
            trt["trt_op_types_to_exclude"] = o.op_types_to_exclude
        if o.engine_cache:  # ORT's own engine names do not key on every build option: a folder per key
            trt["trt_engine_cache_path"] = self.cache_file("-ort-trt" + atomic.OWN_CACHE, {
                "onnxruntime": onnxruntime.__version__, "tensorrt": self.tensorrt, "precision": self.spec.precision,
                "options": dataclasses.asdict(o)}, self.calibration_samples() if self.spec.precision == "int8" else ())
            os.makedirs(trt["trt_engine_cache_path"], exist_ok=True)
        if o.timing_cache:  # per TensorRT version; TensorRT checks it against the GPU itself
            trt["trt_timing_cache_path"] = os.path.join(self.spec.cache_dir or tempfile.gettempdir(),
                                                        "ort-trt-timing-{}{}".format(self.tensorrt, atomic.OWN_CACHE))
            os.makedirs(trt["trt_timing_cache_path"], exist_ok=True)
        if o.profile:
            trt.update(profile_options(profile_shapes(self.samples)))
        cuda = {"device_id": device, "use_tf32": 0, "do_copy_in_default_stream": 1}
        return [(TRT, trt), (CUDA, cuda), "CPUExecutionProvider"]

    def read_precision(self, optimized: Optional[str]) -> Tuple[Optional[str], Dict[str, Any]]:
        """The flags ORT read back, and whether TensorRT got any node: TensorRT picks each layer's
        precision among those the flags allow, and ORT does not expose its engines' layer formats."""
        options = self.settings.get("provider_options", {}).get(TRT, {})
        in_trt = self.settings.get("nodes_by_provider", {}).get(TRT, {}).get("nodes")
        detail = {"source": "ONNX Runtime's TensorRT EP options, read back", "nodes_in_tensorrt": in_trt,
                  "note": "TensorRT chooses each layer's precision among those allowed; ORT does not expose "
                          "the engines' per-layer formats"}
        detail.update({k: options.get(k) for k in ("trt_fp16_enable", "trt_int8_enable")})
        asked = self.spec.precision
        allowed = asked == "fp32" or str(options.get("trt_{}_enable".format(asked))).lower() in ("1", "true")
        if not allowed or in_trt == 0:  # nothing in TensorRT: CUDA runs the fp32 (or fake-quantized) graph
            return "fp32", detail
        # Not per layer: TensorRT got nodes and was allowed `asked` (fp16 by its flag, int8 by the
        # model's Q/DQ nodes), and ORT does not expose which layers took it; the detail says so
        return asked, detail


def profile_options(shapes: Dict[str, List[List[int]]]) -> Dict[str, str]:
    """`trt_profile_{min,opt,max}_shapes` as ORT reads them: "name:1x3x224x224,other:...".
    None when an input's name holds the separators (ORT's format cannot say it)."""
    if any(":" in name or "," in name for name in shapes):
        return {}
    return {"trt_profile_{}_shapes".format(kind): ",".join(
        "{}:{}".format(name, "x".join(str(d) for d in dims[i])) for name, dims in shapes.items())
        for i, kind in enumerate(("min", "opt", "max"))}

"""ONNX Runtime, for the runners that run through it: `ort` (CPU execution provider),
`ort_cuda` (CUDA EP) and `ort_trt` (TensorRT EP, CUDA as its fallback). A runner folder says
which providers with which options (`providers()`) and where it can run (`available_impl`);
this module owns the session, the fp16/int8 conversions and reading back what ran.

fp16 and int8 run converted models, made once and cached by the model's hash:
- fp16: onnxruntime.transformers.float16, inputs and outputs kept fp32 (the graph's inner
  tensors are fp16; ops without fp16 kernels get casts: on an x86 CPU that is every op, so the
  row reads back fp32 from ORT's optimised graph and says so).
- int8: static post-training quantization (QDQ, MinMax calibration on the test inputs), with
  the parameters ORT's documentation gives for the CPU (`CPU_INT8`: uint8 activations, int8
  weights, 7-bit weights where the CPU lacks VNNI), or TensorRT's scheme (`TENSORRT_INT8`:
  symmetric int8, only the ops TensorRT has int8 kernels for).

onnxruntime is imported inside the functions: shared/ imports with no engine installed.
"""
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from .errors import EngineUnavailable, UnsupportedError
from .runner import Runner
from .tensors import Sample

LEVELS = ("disable", "basic", "extended", "all")
MODES = ("sequential", "parallel")
CPU_INT8, TENSORRT_INT8 = "cpu", "tensorrt"
# ORT >= 1.24 records which execution provider got which nodes when asked to at session creation.
RECORD_ASSIGNMENT = "session.record_ep_graph_assignment_info"


@dataclass
class Options:
    graph_optimization_level: str = "all"
    int8_per_channel: bool = True  # per output channel weight scales: better accuracy on convnets
    # parallel runs independent branches of the graph at once, on inter_op_threads (beyond the
    # intra-op budget: a tuned row's choice, not the equal-threads default)
    execution_mode: str = "sequential"
    inter_op_threads: int = 1

    def __post_init__(self) -> None:
        if self.graph_optimization_level not in LEVELS:
            raise ValueError("graph_optimization_level must be one of {}".format(", ".join(LEVELS)))
        if self.execution_mode not in MODES:
            raise ValueError("execution_mode must be one of {}".format(", ".join(MODES)))
        if type(self.inter_op_threads) is not int or self.inter_op_threads < 1:
            raise ValueError("inter_op_threads must be an integer >= 1")


class OrtSessionRunner(Runner):
    """An `InferenceSession` on the providers `providers()` names. Subclasses (one per runner
    folder) give the providers and may change what is converted and how precision is read."""

    packages = ["onnxruntime", "onnxruntime-gpu", "numpy"]
    Options = Options
    concurrent = True  # throughput: run() on one session from several threads (ORT releases the GIL)
    #: precisions that run a converted model (the TensorRT EP makes fp16 itself, from a flag)
    converted = ("fp16", "int8")
    int8_scheme = CPU_INT8
    #: the precision is read back from ORT's optimised graph (which a compiling EP cannot save)
    optimised_graph = True

    def providers(self) -> List[Any]:
        """The execution providers, first preferred, as `InferenceSession(providers=...)` takes them."""
        raise NotImplementedError

    def version_impl(self) -> str:
        import onnxruntime as ort

        return ort.__version__

    def load_impl(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # The default reads the host's core count and ignores container CPU limits. Throughput:
        # concurrent run() calls on this one session (thread-safe), each with its share of the
        # budget; at one thread a call computes on its caller's thread, without ORT's pool.
        opts.intra_op_num_threads = self.threads_per_request
        opts.inter_op_num_threads = self.options.inter_op_threads
        opts.execution_mode = {"sequential": ort.ExecutionMode.ORT_SEQUENTIAL,
                               "parallel": ort.ExecutionMode.ORT_PARALLEL}[self.options.execution_mode]
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.options.graph_optimization_level]
        providers = self.providers()
        if len(providers) > 1:
            opts.add_session_config_entry(RECORD_ASSIGNMENT, "1")
        model_path = self.spec.model_path
        if self.spec.precision in self.converted:
            with self.stage("convert"):
                model_path = self._converted()
        optimized = None
        if self.spec.precision != "fp32" and self.optimised_graph:
            # read back what the optimised graph really computes in
            optimized = os.path.join(tempfile.mkdtemp(prefix="e2e-ort-"), "optimized.onnx")
            opts.optimized_model_filepath = optimized
        with self.stage("compile"):
            try:
                self.session = ort.InferenceSession(model_path, opts, providers=providers)
            except Exception as e:
                if "NOT_IMPLEMENTED" in str(e):
                    raise UnsupportedError(str(e), operator=operator_in(str(e))) from None
                raise
        wanted = [p if isinstance(p, str) else p[0] for p in providers]
        used = self.session.get_providers()
        if used[0] != wanted[0]:  # ORT falls back to the next provider when one cannot start
            raise RuntimeError("ONNX Runtime could not start the {} and fell back to {}: a GPU, a driver or the "
                               "CUDA, cuDNN or TensorRT libraries it loads are missing (ORT's reason is in "
                               "runner.log)".format(wanted[0], ", ".join(used)))
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.settings.update(
            providers=used, intra_op_num_threads=opts.intra_op_num_threads,
            inter_op_num_threads=opts.inter_op_num_threads, execution_mode=self.options.execution_mode,
            graph_optimization_level=self.options.graph_optimization_level,
        )
        options = {p: o for p, o in self.session.get_provider_options().items() if p != "CPUExecutionProvider" and o}
        if options:
            self.settings["provider_options"] = options
        if len(wanted) > 1:  # which nodes fell back from the preferred provider
            nodes = nodes_by_provider(self.session, used[0])
            if nodes:
                self.settings["nodes_by_provider"] = nodes
        try:
            self.precision, self.precision_detail = self.read_precision(optimized)
        finally:
            if optimized:
                shutil.rmtree(os.path.dirname(optimized), ignore_errors=True)

    def read_precision(self, optimized: Optional[str]) -> Tuple[Optional[str], Dict[str, Any]]:
        """What ran, and its spread over the graph: from ORT's optimised graph when one was
        written (below fp32); None (not read back) when there is none below fp32."""
        if optimized:
            return read_back(optimized, self.spec.precision)
        if self.spec.precision == "fp32":
            # the fp32 export as it is: ORT's CPU and CUDA providers compute in the graph's own
            # types (the CUDA provider's TF32 is off unless ort_cuda's tf32 option asks; the
            # provider options read back into the settings say which)
            return "fp32", {}
        return None, {"note": "no optimised graph was written to read the precision back from"}

    def _converted(self) -> str:
        """The fp16 or int8 model, from the cache when this model was converted before."""
        import onnxruntime as ort

        precision = self.spec.precision
        calibration = self.calibration_samples() if precision == "int8" else []
        if precision == "int8":
            self.settings["quantization"] = describe_int8(self.int8_scheme, len(calibration),
                                                          self.options.int8_per_channel)

        def convert(tmp: str) -> None:
            try:
                if precision == "fp16":
                    to_fp16(self.spec.model_path, tmp)
                else:
                    to_int8(self.spec.model_path, tmp, calibration, self.int8_scheme, self.options.int8_per_channel)
            except OSError:  # a full disk is not the model's fault
                raise
            except Exception as e:
                raise UnsupportedError("ONNX Runtime's {} conversion failed: {}".format(precision, e)) from None

        scheme = [self.int8_scheme] if precision == "int8" and self.int8_scheme != CPU_INT8 else []
        path = self.cached("-{}.onnx".format(precision), [ort.__version__, str(self.options), has_vnni()] + scheme,
                           convert, calibration)
        self.settings["converted_model"] = os.path.basename(path)
        return path

    def infer_impl(self, feeds: Sample) -> Any:
        # Plain run(): inputs and outputs are host arrays, copies included on GPU.
        return self.session.run(self.output_names, feeds)

    def outputs_impl(self, raw: Any) -> Sample:
        return dict(zip(self.output_names, raw))

    def release_impl(self) -> None:
        self.session = None


def load_gpu_provider(name: str, wheel: str) -> None:
    """Make the GPU execution provider `name` usable, or say why not: the CUDA and cuDNN
    libraries of the nvidia-* wheels loaded first (`onnxruntime.preload_dlls`, ORT >= 1.21:
    the provider libraries find them so), then the provider looked up in this ORT build."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise EngineUnavailable("onnxruntime cannot be imported here ({}); install {}".format(e, wheel)) from None
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
    available = ort.get_available_providers()
    if name not in available:
        raise EngineUnavailable("onnxruntime {} here has no {} (it has: {}); install {}".format(
            ort.__version__, name, ", ".join(available), wheel))


def nodes_by_provider(session: Any, preferred: str, named: int = 20) -> Dict[str, Any]:
    """Which execution provider got which nodes, as ORT records it (>= 1.24): per provider the
    subgraphs (a compiling EP such as TensorRT builds one engine each) and nodes, the op types,
    and for the providers other than `preferred` (the fallback) the first `named` node names.
    Empty when this ORT cannot say."""
    try:
        subgraphs = session.get_provider_graph_assignment_info()
    except Exception:  # an older ORT, or the recording was not enabled
        return {}
    found = {}  # type: Dict[str, Dict[str, Any]]
    for subgraph in subgraphs:
        nodes = subgraph.get_nodes()
        entry = found.setdefault(subgraph.ep_name, {"subgraphs": 0, "nodes": 0, "ops": Counter(), "names": []})
        entry["subgraphs"] += 1
        entry["nodes"] += len(nodes)
        entry["ops"].update(node.op_type for node in nodes)
        entry["names"].extend(node.name for node in nodes)
    for ep, entry in found.items():
        entry["ops"] = dict(entry["ops"].most_common())
        names = entry.pop("names")
        if ep != preferred:
            entry["node_names"] = names[:named] + (["... {} more".format(len(names) - named)] if len(names) > named else [])
    return found


# The ops that carry a model's arithmetic: the precision they run at is the row's precision.
HEAVY = {"Conv", "FusedConv", "ConvTranspose", "Gemm", "MatMul", "FusedMatMul", "QLinearConv", "QLinearMatMul",
         "MatMulInteger", "ConvInteger", "QGemm", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "NhwcFusedConv"}
# ONNX TensorProto element types
FLOAT, FLOAT16, INT8, UINT8 = 1, 10, 3, 2


def read_back(path: str, asked: str) -> Tuple[str, Dict[str, Any]]:
    """The precision of ORT's own optimised graph, from the element types of each node's
    inputs: on the CPU, for instance, ORT casts an fp16 model's ops back to fp32
    (InsertedPrecisionFreeCast nodes) where it has no fp16 kernel, so "fp16" asked is fp32 run."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    types.update({t.name: t.data_type for t in graph.initializer})
    counts, heavy = Counter(), Counter()  # type: Counter, Counter
    for node in graph.node:
        if node.op_type in ("Cast", "QuantizeLinear", "DequantizeLinear", "ReorderInput", "ReorderOutput"):
            continue
        kinds = {types.get(name) for name in node.input if name}
        kind = ("int8" if kinds & {INT8, UINT8} or node.op_type in HEAVY and "Integer" in node.op_type else
                "fp16" if FLOAT16 in kinds else "fp32" if FLOAT in kinds else None)
        if kind:
            counts[kind] += 1
            heavy[kind] += node.op_type in HEAVY
    ran = asked if heavy[asked] else "fp32"
    casts = sum(1 for n in graph.node if n.op_type == "Cast" and n.name.startswith("InsertedPrecisionFreeCast"))
    return ran, {"source": "ONNX Runtime's optimised graph", "ops": dict(counts), "heavy_ops": dict(heavy),
                 "casts_inserted_by_ort": casts}


def to_fp16(source: str, target: str) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(source), keep_io_types=True)
    onnx.save(model, target, save_as_external_data=model.ByteSize() > 2 ** 31 - 1)


def to_int8(source: str, target: str, samples: List[Sample], scheme: str = CPU_INT8, per_channel: bool = True) -> None:
    """Static QDQ quantization calibrated (MinMax) on `samples`. `cpu`: the parameters ORT's
    documentation gives for x86 (uint8 activations, int8 weights, `reduce_range` without VNNI).
    `tensorrt`: TensorRT's scheme (symmetric int8 activations and weights, zero points 0, weights
    per channel, only Conv/ConvTranspose/Gemm/MatMul quantized: its int8 kernels; the rest stays fp32)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Inputs(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(samples)

        def get_next(self) -> Optional[Sample]:
            return next(self.left, None)

    big = os.path.getsize(source) > 2 ** 31 - 1
    if scheme == TENSORRT_INT8:
        quantize_static(source, target, Inputs(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "ConvTranspose", "Gemm", "MatMul"],
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
                        use_external_data_format=big)
    else:
        quantize_static(source, target, Inputs(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        reduce_range=not has_vnni(), activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        use_external_data_format=big)


def describe_int8(scheme: str, samples: int, per_channel: bool = True) -> str:
    """The row's `settings.quantization`: what `to_int8` does."""
    import onnxruntime

    if scheme == TENSORRT_INT8:
        return ("Q/DQ by ONNX Runtime {} static quantization, MinMax calibration on {} input(s), symmetric int8, "
                "weights per channel".format(onnxruntime.__version__, samples))
    return "static QDQ, MinMax calibration on {} input(s), uint8 activations, int8 weights{}, {}".format(
        samples, ", 7-bit (reduce_range: no VNNI)" if not has_vnni() else "",
        "per channel" if per_channel else "per tensor")


def has_vnni() -> bool:
    """8-bit dot products (AVX512-VNNI or AVX-VNNI): no need for 7-bit weights."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def operator_in(message: str) -> str:
    """ORT says "Could not find an implementation for Foo(13) node with name '...'"."""
    marker = "implementation for "
    if marker in message:
        return message.split(marker, 1)[1].split("(", 1)[0].strip()
    return ""

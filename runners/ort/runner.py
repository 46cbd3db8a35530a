"""ONNX Runtime runner: CPU execution provider, or CUDA when the device is a GPU.

fp16 and int8 run converted models, made once and cached by the model's hash:
- fp16: onnxruntime.transformers.float16, inputs and outputs kept fp32 (the graph's inner
  tensors are fp16; ops without fp16 kernels get casts: on an x86 CPU that is every op, so the
  row reads back fp32 from ORT's optimised graph and says so).
- int8: static post-training quantization (QDQ, MinMax calibration on the test inputs), with
  the parameters ORT's documentation gives for the CPU: uint8 activations, int8 weights, and
  7-bit weights (`reduce_range`) where the CPU lacks VNNI.
"""
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, Tuple

from shared import EngineUnavailable, Runner, Sample, UnsupportedError

LEVELS = ("disable", "basic", "extended", "all")
MODES = ("sequential", "parallel")


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


class OrtRunner(Runner):
    packages = ["onnxruntime", "onnxruntime-gpu", "numpy"]
    Options = Options
    concurrent = True  # throughput: run() on one session from several threads (ORT releases the GIL)

    def available_impl(self) -> None:
        import onnxruntime as ort

        if self.spec.device != "cpu" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise EngineUnavailable("onnxruntime here has no CUDAExecutionProvider (providers: {}); "
                                    "use the GPU image".format(", ".join(ort.get_available_providers())))

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
        if self.spec.device == "cpu":
            providers = ["CPUExecutionProvider"]
        else:
            providers = [("CUDAExecutionProvider", {"device_id": self.spec.device_index}), "CPUExecutionProvider"]
        model_path = self.spec.model_path
        if self.spec.precision != "fp32":
            with self.stage("convert"):
                model_path = self._converted()
        optimized = None
        if self.spec.precision != "fp32":  # read back what the optimised graph really computes in
            optimized = os.path.join(tempfile.mkdtemp(prefix="e2e-ort-"), "optimized.onnx")
            opts.optimized_model_filepath = optimized
        with self.stage("compile"):
            try:
                self.session = ort.InferenceSession(model_path, opts, providers=providers)
            except Exception as e:
                if "NOT_IMPLEMENTED" in str(e):
                    raise UnsupportedError(str(e), operator=_operator_in(str(e))) from None
                raise
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.settings.update(
            providers=self.session.get_providers(), intra_op_num_threads=opts.intra_op_num_threads,
            inter_op_num_threads=opts.inter_op_num_threads, execution_mode=self.options.execution_mode,
            graph_optimization_level=self.options.graph_optimization_level,
        )
        self.precision = self.spec.precision
        if optimized:
            self.precision, self.precision_detail = _read_back(optimized, self.spec.precision)
            shutil.rmtree(os.path.dirname(optimized), ignore_errors=True)

    def _converted(self) -> str:
        """The fp16 or int8 model, from the cache when this model was converted before."""
        import onnxruntime as ort

        precision = self.spec.precision
        calibration = self.calibration_samples() if precision == "int8" else []
        if precision == "int8":
            self.settings.update(quantization="static QDQ, MinMax calibration on {} input(s), uint8 "
                                 "activations, int8 weights{}, {}".format(
                                     len(calibration), ", 7-bit (reduce_range: no VNNI)" if not _has_vnni() else "",
                                     "per channel" if self.options.int8_per_channel else "per tensor"))

        def convert(tmp: str) -> None:
            try:
                if precision == "fp16":
                    _to_fp16(self.spec.model_path, tmp)
                else:
                    _to_int8(self.spec.model_path, tmp, calibration, self.options.int8_per_channel)
            except OSError:  # a full disk is not the model's fault
                raise
            except Exception as e:
                raise UnsupportedError("ONNX Runtime's {} conversion failed: {}".format(precision, e)) from None

        path = self.cached("-{}.onnx".format(precision), [ort.__version__, str(self.options), _has_vnni()],
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


# The ops that carry a model's arithmetic: the precision they run at is the row's precision.
HEAVY = {"Conv", "FusedConv", "ConvTranspose", "Gemm", "MatMul", "FusedMatMul", "QLinearConv", "QLinearMatMul",
         "MatMulInteger", "ConvInteger", "QGemm", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "NhwcFusedConv"}
# ONNX TensorProto element types
FLOAT, FLOAT16, INT8, UINT8 = 1, 10, 3, 2


def _read_back(path: str, asked: str) -> Tuple[str, Dict[str, Any]]:
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


def _to_fp16(source: str, target: str) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(source), keep_io_types=True)
    onnx.save(model, target, save_as_external_data=model.ByteSize() > 2 ** 31 - 1)


def _to_int8(source: str, target: str, samples: list, per_channel: bool) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Inputs(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(samples)

        def get_next(self):
            return next(self.left, None)

    quantize_static(source, target, Inputs(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    reduce_range=not _has_vnni(), activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    use_external_data_format=os.path.getsize(source) > 2 ** 31 - 1)


def _has_vnni() -> bool:
    """8-bit dot products (AVX512-VNNI or AVX-VNNI): no need for 7-bit weights."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def _operator_in(message: str) -> str:
    """ORT says "Could not find an implementation for Foo(13) node with name '...'"."""
    marker = "implementation for "
    if marker in message:
        return message.split(marker, 1)[1].split("(", 1)[0].strip()
    return ""

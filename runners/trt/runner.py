"""TensorRT 10 runner: ONNX -> serialized engine (cached on disk) -> execute_async_v3.

Copies are inside the timed call, as for every engine: host->device inputs, inference,
device->host outputs, stream sync. Outputs whose size TensorRT learns only while running
(detection boxes) come back through an IOutputAllocator, as in Polygraphy's TrtRunner
(tools/Polygraphy/polygraphy/backend/trt/runner.py).
"""
import dataclasses
import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from shared import EngineUnavailable, Runner, Sample, UnsupportedError
from shared.ort import TENSORRT_INT8, describe_int8, to_int8
from shared.tensors import profile_shapes

INSTALL = "pip install -r runners/trt/requirements.txt, or use the e2e-trt image"
Shapes = Dict[str, List[List[int]]]  # input name -> [min, opt, max]


@dataclass
class Options:
    workspace_mb: Optional[int] = None  # None: TensorRT's default, all of the GPU's memory
    builder_optimization_level: int = 3  # TensorRT's default; 0 builds fastest, 5 searches longest
    tf32: bool = False  # TensorRT allows TF32 for fp32 by default; off keeps fp32 runs true fp32
    engine_cache: bool = True  # reuse serialized engines under spec.cache_dir

    def __post_init__(self) -> None:
        if self.workspace_mb is not None and (type(self.workspace_mb) is not int or self.workspace_mb < 1):
            raise ValueError("workspace_mb must be a positive number of MiB, or null for TensorRT's default")
        if type(self.builder_optimization_level) is not int or not 0 <= self.builder_optimization_level <= 5:
            raise ValueError("builder_optimization_level must be one of 0, 1, 2, 3, 4, 5")
        if not isinstance(self.tf32, bool) or not isinstance(self.engine_cache, bool):
            raise ValueError("tf32 and engine_cache must be true or false")


class TrtRunner(Runner):
    packages = ["tensorrt", "tensorrt-cu12", "cuda-python", "cuda-bindings", "numpy", "onnxruntime"]
    Options = Options

    def available_impl(self) -> None:
        try:
            import tensorrt  # noqa: F401
            from cuda.bindings import runtime as cudart  # cuda-python >= 12.6 (before: `from cuda import cudart`)
        except (ImportError, OSError) as e:
            raise EngineUnavailable(f"TensorRT or cuda-python cannot be imported here ({e}); {INSTALL}") from None
        err, count = cudart.cudaGetDeviceCount()
        if err != cudart.cudaError_t.cudaSuccess or count == 0:
            why = _cuda_error(cudart, err) if count is None else "it sees 0 devices"
            raise EngineUnavailable(f"no NVIDIA GPU is visible to CUDA ({why}); rerun on a machine with one")
        if self.spec.device_index >= count:
            raise EngineUnavailable(f"{self.spec.device} was asked for, but CUDA sees {count} GPU(s)")
        self.cudart = cudart
        _cuda(cudart, cudart.cudaSetDevice(self.spec.device_index))  # TensorRT builds and runs on this one
        prop = _cuda(cudart, cudart.cudaGetDeviceProperties(self.spec.device_index))
        self.gpu = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
        self.sm = f"{prop.major}.{prop.minor}"

    def version_impl(self) -> str:
        import tensorrt as trt

        return trt.__version__

    def load_impl(self) -> None:
        import tensorrt as trt

        spec, build = self.spec, _sibling("build")
        self.logger = _make_logger(trt)
        trt.init_libnvinfer_plugins(self.logger, "")  # ops the parser maps to plugins
        builder, config = build.configure(trt, self.logger, self.options, spec.precision)
        shapes = profile_shapes(self.samples)
        calibration = self.calibration_samples() if spec.precision == "int8" else []
        if calibration:  # said on an engine cache hit too
            self.settings.update(network="strongly typed",
                                 quantization=describe_int8(TENSORRT_INT8, len(calibration)))
        self.settings.update(tensorrt=trt.__version__, gpu=self.gpu, compute_capability=self.sm, input_shapes=shapes,
                             **build.described(trt, config))
        self.runtime = trt.Runtime(self.logger)
        path, engine = self._cache_path(trt.__version__, shapes, calibration), None
        if path and os.path.isfile(path):
            with self.stage("compile"), open(path, "rb") as f:
                engine = self.runtime.deserialize_cuda_engine(f.read())  # None if stale or corrupt: rebuild
        self.settings["engine_cache"] = "off" if path is None else ("hit" if engine else "miss")
        if engine is None:
            plan = self._build(trt, builder, config, shapes, calibration)
            self.settings["engine_cache_file"] = build.save(path, plan)
            with self.stage("compile"):
                engine = self.runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise RuntimeError(f"TensorRT cannot load the engine it built: {self.logger.last_errors()}")
        # The flag or the Q/DQ nodes allow a precision; the engine says per layer what it chose.
        self.precision, self.precision_detail = build.layer_precisions(trt, engine, spec.precision)
        self._setup_io(trt, engine)

    def _build(self, trt: Any, builder: Any, config: Any, shapes: Shapes, calibration: List[Sample]) -> Any:
        with self.stage("convert"):
            model_path, flags = self.spec.model_path, 0  # explicit batch is the only mode in TensorRT 10
            if calibration:
                # Explicit quantization: TensorRT's docs pair Q/DQ networks with strong typing and
                # no precision flags (its implicit int8 calibrators are deprecated in 10.x).
                model_path = self._quantized(calibration)
                flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
            network = builder.create_network(flags)
            parser = trt.OnnxParser(network, self.logger)
            if not parser.parse_from_file(model_path):  # from a path, so external weights load too
                raise _parse_error(parser)
        with self.stage("compile"):  # the parser owns the weights: it lives until the plan is built
            return _sibling("build").serialized(trt, builder, config, network, shapes, self.logger)

    def _cache_path(self, version: str, shapes: Shapes, calibration: List[Sample]) -> Optional[str]:
        """An engine is valid only for one ONNX file, TensorRT version, GPU, precision, options
        and, at int8, calibration data."""
        if not (self.options.engine_cache and self.spec.cache_dir):
            return None
        return self.cache_file(".engine", {
            "tensorrt": version, "gpu": self.gpu, "sm": self.sm, "precision": self.spec.precision,
            "options": dataclasses.asdict(self.options), "shapes": shapes}, calibration)

    def _quantized(self, calibration: List[Sample]) -> str:
        """The model with Q/DQ nodes placed the way TensorRT reads them (shared/ort.py's
        TensorRT scheme: ONNX Runtime's static quantization, calibrated on the CPU)."""
        import onnxruntime

        def quantize(tmp: str) -> None:
            try:
                to_int8(self.spec.model_path, tmp, calibration, TENSORRT_INT8)
            except OSError:  # a full disk is not the model's fault
                raise
            except Exception as e:
                raise UnsupportedError(f"int8 quantization for TensorRT failed: {e}") from None

        return self.cached("-trt-int8.onnx", [onnxruntime.__version__], quantize, calibration)

    def _setup_io(self, trt: Any, engine: Any) -> None:
        self.engine, self.context = engine, engine.create_execution_context()
        if self.context is None:
            raise RuntimeError(f"TensorRT could not create an execution context: {self.logger.last_errors()}")
        self.input_buffers = _DeviceBuffers(self.cudart)
        self.allocator = _make_output_allocator(trt, _DeviceBuffers(self.cudart))
        self.inputs, self.outputs, self.dtypes = _io_tensors(trt, engine)
        for name in self.outputs:
            if not self.context.set_output_allocator(name, self.allocator):
                raise RuntimeError(f"TensorRT refused an output allocator for {name!r}")
        self.stream = _cuda(self.cudart, self.cudart.cudaStreamCreate())

    def infer_impl(self, feeds: Sample) -> Sample:
        cudart, ctx, stream = self.cudart, self.context, self.stream
        kinds = cudart.cudaMemcpyKind
        host_inputs = []  # host arrays must outlive their async copies
        for name in self.inputs:
            array = np.ascontiguousarray(feeds[name], dtype=self.dtypes[name])
            host_inputs.append(array)
            ptr = self.input_buffers.get(name, array.nbytes)
            _cuda(cudart, cudart.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, kinds.cudaMemcpyHostToDevice,
                                                 stream))
            if tuple(ctx.get_tensor_shape(name)) != array.shape and not ctx.set_input_shape(name, array.shape):
                raise RuntimeError(f"input {name!r} of shape {array.shape} is outside the engine's profile "
                                   f"[min, opt, max] {self.settings['input_shapes'].get(name)}")
            ctx.set_tensor_address(name, ptr)
        if not ctx.execute_async_v3(int(stream)):
            raise RuntimeError(f"TensorRT execute_async_v3 failed: {self.logger.last_errors()}")
        outputs = {}
        for name in self.outputs:  # shapes are known once execute_async_v3 returns (Polygraphy reads them so)
            host = np.empty(self.allocator.shapes[name], dtype=self.dtypes[name])
            if host.nbytes:  # an empty output stays empty: nothing is ever made up
                ptr = self.allocator.buffers.blocks[name][0]
                _cuda(cudart, cudart.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, kinds.cudaMemcpyDeviceToHost,
                                                     stream))
            outputs[name] = host
        _cuda(cudart, cudart.cudaStreamSynchronize(stream))
        return outputs

    def release_impl(self) -> None:
        self.context = self.engine = self.runtime = None
        allocator = getattr(self, "allocator", None)
        for buffers in (getattr(self, "input_buffers", None), allocator and allocator.buffers):
            if buffers:
                buffers.free()
        if getattr(self, "stream", None) is not None:
            self.cudart.cudaStreamDestroy(self.stream)


def _io_tensors(trt: Any, engine: Any) -> Tuple[List[str], List[str], Dict[str, Any]]:
    """The engine's input and output tensor names, and each one's numpy dtype."""
    inputs, outputs, dtypes = [], [], {}  # type: List[str], List[str], Dict[str, Any]
    for name in (engine.get_tensor_name(i) for i in range(engine.num_io_tensors)):
        dtypes[name] = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            if engine.is_shape_inference_io(name):  # would need host memory, not a device buffer
                raise UnsupportedError(f"input {name!r} is a shape tensor, which this runner cannot feed yet")
            inputs.append(name)
        else:
            outputs.append(name)
    return inputs, outputs, dtypes


class _DeviceBuffers:
    """Device memory by tensor name that only grows, so steady-state runs allocate nothing."""

    def __init__(self, cudart: Any) -> None:
        self.cudart, self.blocks = cudart, {}  # type: Any, Dict[str, Tuple[int, int]]

    def get(self, name: str, nbytes: int) -> int:
        ptr, capacity = self.blocks.get(name, (0, 0))
        if not ptr or nbytes > capacity:
            if ptr:
                _cuda(self.cudart, self.cudart.cudaFree(ptr))
            ptr = _cuda(self.cudart, self.cudart.cudaMalloc(max(nbytes, 1)))  # aligned to 256 bytes
            self.blocks[name] = (ptr, nbytes)
        return ptr

    def free(self) -> None:
        for ptr, _ in self.blocks.values():
            self.cudart.cudaFree(ptr)
        self.blocks = {}


def _make_output_allocator(trt: Any, buffers: _DeviceBuffers) -> Any:
    class OutputAllocator(trt.IOutputAllocator):
        """Gives TensorRT memory for outputs as their size becomes known, and records their shapes."""

        def __init__(self) -> None:
            trt.IOutputAllocator.__init__(self)  # pybind11 trampolines need the explicit base __init__
            self.buffers, self.shapes = buffers, {}  # type: _DeviceBuffers, Dict[str, Tuple[int, ...]]

        def reallocate_output(self, tensor_name: str, memory: int, size: int, alignment: int) -> int:
            return self.buffers.get(tensor_name, size)  # size > 0 even for empty tensors (NvInferRuntime.h)

        def reallocate_output_async(self, tensor_name: str, memory: int, size: int, alignment: int,
                                    stream: int) -> int:  # what TensorRT 10 calls when it is defined
            return self.buffers.get(tensor_name, size)

        def notify_shape(self, tensor_name: str, shape: Any) -> None:
            self.shapes[tensor_name] = tuple(shape)

    return OutputAllocator()


def _make_logger(trt: Any) -> Any:
    class Logger(trt.ILogger):
        """Warnings and errors go to the runner log; errors are kept for the one-line reason."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors = []  # type: List[str]

        def log(self, severity: Any, msg: str) -> None:
            if severity <= trt.ILogger.Severity.WARNING:
                print(f"[TensorRT] {severity.name}: {msg}", file=sys.stderr, flush=True)
            if severity <= trt.ILogger.Severity.ERROR:
                self.errors.append(msg)

        def last_errors(self) -> str:
            return " | ".join(self.errors[-3:]) or "TensorRT logged no error; see runner.log"

    return Logger()


def _parse_error(parser: Any) -> Exception:
    """TensorRT 10's ParserError names the failing node and its operator (python/src/parsers/pyOnnx.cpp)."""
    errors = [parser.get_error(i) for i in range(parser.num_errors)]
    for e in errors:
        print(f"[TensorRT] parser: {e}", file=sys.stderr)
    if not errors:
        return RuntimeError("TensorRT's ONNX parser failed without saying why; see runner.log")
    first, more = errors[0], f" (and {len(errors) - 1} more error(s), see runner.log)" if len(errors) > 1 else ""
    op, node = first.node_operator(), first.node_name()
    if op:
        return UnsupportedError(f"TensorRT cannot convert node {node!r} ({op}): {first.desc()}{more}",
                                operator=op, node=node)
    return RuntimeError(f"TensorRT cannot parse the ONNX model ({first.code()}): {first.desc()}{more}")


def _cuda(cudart: Any, result: Tuple[Any, ...]) -> Any:
    """cuda-python returns (error, *values): raise on error, else return the value(s)."""
    err, values = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA error {_cuda_error(cudart, err)}")
    return values[0] if len(values) == 1 else values


def _sibling(name: str) -> Any:
    """A module beside this file (a runner is loaded from its path, not imported as a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("e2e_trt_" + name, os.path.join(os.path.dirname(__file__), name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _cuda_error(cudart: Any, err: Any) -> str:
    return f"{cudart.cudaGetErrorName(err)[1].decode()}: {cudart.cudaGetErrorString(err)[1].decode()}"

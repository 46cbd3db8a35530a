"""OpenVINO runner: the CPU plugin, at an explicit inference precision read back after compiling.
int8 is NNCF post-training quantization, calibrated (--calibration or the test inputs) and cached.

Throughput scenario (shared/scenarios/throughput.py, which drives the runner's `submit_impl`):
compiled with the THROUGHPUT hint (the plugin picks its streams for the thread budget, as
`benchmark_app -hint throughput` does) and driven by an AsyncInferQueue of
OPTIMAL_NUMBER_OF_INFER_REQUESTS requests (or the concurrency asked), both read back: this
runner's `submit_impl` replaces the base class's worker threads."""
import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

from shared import Runner, Sample, UnsupportedError, one_line

HINTS = ("LATENCY", "THROUGHPUT")
# e2e precision -> OpenVINO element type, and back
TO_OV = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
FROM_OV = {v: k for k, v in TO_OV.items()}


@dataclass
class Options:
    performance_hint: str = ""  # empty: the scenario's (LATENCY, or THROUGHPUT with requests in flight)
    num_streams: int = 0  # 0: one in the latency scenario, the hint's choice in the throughput one

    def __post_init__(self) -> None:
        if self.performance_hint not in HINTS + ("",):
            raise ValueError("performance_hint must be one of {}, got {!r}".format(", ".join(HINTS), self.performance_hint))
        if not isinstance(self.num_streams, int) or self.num_streams < 0:
            raise ValueError("num_streams must be an integer >= 0 (0: the hint's choice), got {!r}".format(
                self.num_streams))


class OpenVinoRunner(Runner):
    packages = ["openvino", "numpy"]
    Options = Options
    concurrent = True  # throughput: an AsyncInferQueue (submit_impl)

    def version_impl(self) -> str:
        import openvino as ov

        return ov.get_version()

    def load_impl(self) -> None:
        import openvino as ov

        core = ov.Core()
        with self.stage("convert"):
            model = _unsupported_from(core.read_model, self.spec.model_path)
            if self.spec.precision == "int8":
                model = self._quantized(core, model)
            self._fix_input_shapes(model)
        # The ONNX graph outputs, in order; compiled.outputs keeps that order.
        self.output_names = [port.get_any_name() for port in model.outputs]
        config = {
            # Always set: on CPUs with AVX512-BF16 or AMX the plugin's default is bf16.
            # int8: the quantized ops run in int8 whatever the hint; the rest at f32.
            "INFERENCE_PRECISION_HINT": TO_OV.get(self.spec.precision, "f32"),
            "INFERENCE_NUM_THREADS": self.spec.threads,
            # an expert's hint for the scenario: requests in flight want THROUGHPUT
            "PERFORMANCE_HINT": self.options.performance_hint or ("THROUGHPUT" if self.scenario.concurrent else "LATENCY"),
        }
        if self.options.num_streams or not self.scenario.concurrent:
            config["NUM_STREAMS"] = self.options.num_streams or 1
        with self.stage("compile"):
            self.compiled = _unsupported_from(core.compile_model, model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        # A hint is a wish: the plugin falls back (e.g. bf16 -> f32 without hardware support).
        ran_at = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self.precision = FROM_OV.get(ran_at, ran_at)
        # The compiled model's own ops and the precision each runs at (its runtime model).
        kinds = Counter(str(op.get_rt_info()["runtimePrecision"].astype(str)) for op in
                        self.compiled.get_runtime_model().get_ops() if "runtimePrecision" in op.get_rt_info())
        self.precision_detail = {"source": "OpenVINO's runtime model", "ops_by_runtime_precision": dict(kinds)}
        if self.spec.precision == "int8":  # int8 when the plugin really runs int8 kernels
            self.settings["runtime_precisions"] = sorted(kinds)
            self.precision = "int8" if set(kinds) & {"i8", "u8"} else self.precision
        self.settings.update({key.lower(): _plain(self.compiled.get_property(key)) for key in (
            "INFERENCE_PRECISION_HINT", "INFERENCE_NUM_THREADS", "PERFORMANCE_HINT", "NUM_STREAMS",
            "EXECUTION_MODE_HINT", "EXECUTION_DEVICES")})
        self.settings["device"] = core.get_property("CPU", "FULL_DEVICE_NAME")
        if self.scenario.concurrent:
            self._request_queue()

    def _request_queue(self) -> None:
        """Requests in flight through OpenVINO's own async API (what `submit_impl` feeds): the
        plugin's optimal number of infer requests unless a concurrency is asked; each stream's
        share of the thread budget."""
        import openvino as ov

        optimal = self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        self.in_flight = self.spec.concurrency or optimal
        self.threads_per_request = max(1, self.spec.threads // max(1, self.settings["num_streams"]))
        self.settings["optimal_number_of_infer_requests"] = optimal
        self.queue = ov.AsyncInferQueue(self.compiled, self.in_flight)
        # On OpenVINO's thread when a request ends: its outputs copied (as infer_impl's are)
        self.queue.set_callback(lambda request, done: done(
            tuple(t.data.copy() for t in request.output_tensors), None))

    def _fix_input_shapes(self, model: Any) -> None:
        """Reshape each dynamic input to the one shape every sample gives it, as benchmark_app does
        with `-shape`: the plugin then plans memory and picks kernels once, at compile time.
        An input whose shape varies between samples stays dynamic; only inputs are touched, so
        shapes the graph computes (a detector's box count) stay dynamic. Recorded in settings."""
        import openvino as ov

        fixed = {}
        for port in model.inputs:
            name = next((n for n in sorted(port.get_names()) if n in self.samples[0]), port.get_any_name())
            shapes = {tuple(s[name].shape) if name in s else None for s in self.samples}
            declared = port.get_partial_shape()
            if declared.is_dynamic and len(shapes) == 1 and None not in shapes:
                shape = ov.PartialShape(list(shapes.pop()))
                if shape.compatible(declared):  # else the inference stage reports the mismatch
                    fixed[name] = shape
        if fixed:
            try:
                model.reshape(fixed)
            except RuntimeError as e:  # reshape rolls back: the model runs with its own shapes
                self.settings["reshape_failed"] = one_line(e)
                fixed = {}
        self.settings["static_shapes"] = {name: [d.get_length() for d in shape] for name, shape in fixed.items()}

    def _quantized(self, core: Any, model: Any) -> Any:
        """NNCF's post-training quantization (its default preset), calibrated on `--calibration`
        images or the test inputs; saved once per model, calibration data and NNCF version."""
        import nncf
        import openvino as ov

        calibration = self.calibration_samples()
        self.settings["quantization"] = "NNCF {} post-training quantization, default preset, {} calibration " \
                                        "input(s)".format(nncf.__version__, len(calibration))
        made = []

        def quantize(tmp: str) -> None:
            try:
                quantized = nncf.quantize(model, nncf.Dataset(calibration), subset_size=len(calibration))
            except Exception as e:
                raise UnsupportedError("NNCF could not quantize the model: {}".format(one_line(e))) from None
            os.mkdir(tmp)
            ov.save_model(quantized, os.path.join(tmp, "model.xml"))  # and model.bin: one folder, sealed whole
            made.append(quantized)

        path = self.cached("-int8.ov", [nncf.__version__, ov.get_version()], quantize, calibration)
        return made[0] if made else core.read_model(os.path.join(path, "model.xml"))

    def infer_impl(self, feeds: Sample) -> Tuple[Any, ...]:
        # share_inputs: the request reads the preloaded arrays in place (alive as long as the
        # runner is, and the call is synchronous) instead of copying them in on every call; an
        # array of another dtype is still converted. share_outputs=False: each output (at its
        # actual, possibly dynamic shape) is copied into a fresh array the caller may keep.
        return self.request.infer(feeds, share_inputs=True, share_outputs=False).to_tuple()

    def submit_impl(self, feeds: Sample, done: Any) -> None:
        # Zero-copy inputs, as in infer_impl: the preloaded arrays outlive every request.
        self.queue.start_async(feeds, userdata=done, share_inputs=True)

    def outputs_impl(self, raw: Tuple[Any, ...]) -> Sample:
        # Naming, outside the timed call: OVDict's lookup by port costs ~20 us a call.
        return dict(zip(self.output_names, raw))

    def release_impl(self) -> None:
        queue = getattr(self, "queue", None)
        if queue is not None:
            queue.wait_all()
        self.request = self.compiled = self.queue = None


def _plain(value: object) -> object:
    """Property values as JSON-friendly data: element types as "f32", enums by name."""
    if isinstance(value, (int, float, str, list)):
        return value
    return value.to_string() if hasattr(value, "to_string") else getattr(value, "name", str(value))


def _unsupported_from(call: Callable[..., Any], *args: Any) -> Any:
    """Run an OpenVINO call; an error that names the operator it broke on becomes UnsupportedError."""
    try:
        return call(*args)
    except RuntimeError as e:
        operator, node, line = _operator_in(str(e))
        if operator is None:
            raise
        raise UnsupportedError("OpenVINO cannot handle operator {}: {}; export the model without it or at "
                               "another opset.\n{}".format(operator, line, e), operator=operator, node=node) from None


def _operator_in(message: str) -> Tuple[Optional[str], Optional[str], str]:
    """(operator, node, the line naming them) from an ONNX frontend or CPU plugin error message.

    Frontend: "-- No conversion rule found for operations: FooBar-17, Baz-11" or
    "-- Conversion is failed for: Qux-13" (ONNX op type, dash, opset).
    CPU plugin: "Unsupported operation of type: NonZero name: /roi_heads/NonZero".
    """
    found = re.search(r"-- (?:No conversion rule found for operations|Conversion is failed for): ([^\n]+)", message)
    if found:
        ops = [re.sub(r"-\d+$", "", op.strip()) for op in found.group(1).split(",")]
        return ", ".join(ops), None, found.group(0)[3:].strip()
    found = re.search(r"Unsupported operation of type: (\S+) name: ([^\n]+)", message)
    if found:
        return found.group(1), found.group(2).strip(), found.group(0).strip()
    return None, None, ""

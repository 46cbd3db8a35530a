"""ONNX Runtime runner: CPU execution provider, or CUDA when the device is a GPU."""
from dataclasses import dataclass

from shared import EngineUnavailable, Runner, Sample, UnsupportedError

LEVELS = ("disable", "basic", "extended", "all")


@dataclass
class Options:
    graph_optimization_level: str = "all"

    def __post_init__(self) -> None:
        if self.graph_optimization_level not in LEVELS:
            raise ValueError("graph_optimization_level must be one of {}".format(", ".join(LEVELS)))


class OrtRunner(Runner):
    packages = ["onnxruntime", "onnxruntime-gpu", "numpy"]
    Options = Options

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
        # The default reads the host's core count and ignores container CPU limits.
        opts.intra_op_num_threads = self.spec.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
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
        with self.stage("compile"):
            try:
                self.session = ort.InferenceSession(self.spec.model_path, opts, providers=providers)
            except Exception as e:
                if "NOT_IMPLEMENTED" in str(e):
                    raise UnsupportedError(str(e), operator=_operator_in(str(e))) from None
                raise
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.settings.update(
            providers=self.session.get_providers(), intra_op_num_threads=opts.intra_op_num_threads,
            inter_op_num_threads=opts.inter_op_num_threads, execution_mode="sequential",
            graph_optimization_level=self.options.graph_optimization_level,
        )
        self.precision = "fp32"

    def infer_impl(self, feeds: Sample) -> Sample:
        # Plain run(): inputs and outputs are host arrays, copies included on GPU.
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds)))

    def release_impl(self) -> None:
        self.session = None


def _operator_in(message: str) -> str:
    """ORT says "Could not find an implementation for Foo(13) node with name '...'"."""
    marker = "implementation for "
    if marker in message:
        return message.split(marker, 1)[1].split("(", 1)[0].strip()
    return ""

"""Triton Inference Server runner: the model served by a tritonserver on loopback, measured
from a client in this process. The timed call is `client.infer()` end to end: request
serialization, transport over gRPC or HTTP, Triton's scheduling, the backend, the response
and its parsing into arrays. The server's own statistics split the call (see `instrument_impl`).

Backends (engine option `backend`, default `auto`: the first this server has):
- onnxruntime  Triton's native ONNX Runtime backend (NVIDIA's image); on a GPU, optionally
               with ONNX Runtime's TensorRT execution provider (`tensorrt_accelerator`)
- tensorrt     Triton's TensorRT backend, on a plan this runner builds from the ONNX file
- python       the python backend running ONNX Runtime's CPU provider (python_model.py): all
               that the server bundled with nvidia-pytriton can do, and the row says so
"""
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from shared import Runner, Sample, UnsupportedError

PROTOCOLS = ("http", "grpc")
BACKENDS = ("auto", "onnxruntime", "tensorrt", "python")


@dataclass
class Options:
    # HTTP (binary tensors): measured on 2 cores with a 600 KB input, tritonclient's gRPC client
    # spent ~4.4 ms of CPU per call (protobuf copies, its polling threads) against ~1.5 ms for
    # HTTP, CPU taken from the server on a small machine; its wall time was no better either
    protocol: str = "http"
    backend: str = "auto"
    tensorrt_accelerator: bool = False  # onnxruntime backend on a GPU: ORT's TensorRT execution provider
    startup_timeout_s: float = 120.0  # server start, and again model load (a TensorRT build takes minutes)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError("protocol must be one of {}".format(", ".join(PROTOCOLS)))
        if self.backend not in BACKENDS:
            raise ValueError("backend must be one of {}".format(", ".join(BACKENDS)))
        if self.startup_timeout_s <= 0:
            raise ValueError("startup_timeout_s must be > 0")


class TritonRunner(Runner):
    packages = ["nvidia-pytriton", "tritonclient", "onnxruntime", "numpy", "onnx", "tensorrt-cu12"]
    Options = Options

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.server: Any = None
        self.client: Any = None
        self.workdir = ""

    def available_impl(self) -> None:
        server = _sibling("server")
        self.installation = server.find()
        self.backend = _sibling("backends").choose(self.installation, self.spec.device != "cpu", self.options,
                                                   server.libpython)

    def version_impl(self) -> str:
        """The server is the engine: it starts here (as another engine is imported), on free
        loopback ports, and says its own version."""
        server = _sibling("server")
        self.workdir = tempfile.mkdtemp(prefix="e2e-triton-")
        repo = os.path.join(self.workdir, "repository")
        os.makedirs(repo)
        self.server = server.Server(self.installation, repo, self.workdir, self.options.protocol)
        try:
            url = self.server.start(self._ready, self.options.startup_timeout_s)
        except server.ServerFailed as e:
            raise RuntimeError(str(e)) from None
        metadata = self.client.get_server_metadata()
        version = metadata["version"] if isinstance(metadata, dict) else metadata.version
        self.settings.update(server="tritonserver {} ({})".format(version, self.installation.origin),
                             protocol=self.options.protocol, url=url)
        return version

    def _ready(self, url: str) -> bool:
        if self.client is None or self._url != url:
            self.protocol_module, self.client = _sibling("client").connect(self.options.protocol, url,
                                                                           self.options.startup_timeout_s)
            self._url = url
        return bool(self.client.is_server_ready())

    def load_impl(self) -> None:
        repository, backends = _sibling("repository"), _sibling("backends")
        inputs, outputs = repository.onnx_io(self.spec.model_path)
        self.output_names = [t.name for t in outputs]
        report = os.path.join(self.workdir, "session.json")
        parameters, accelerator = backends.parameters(self.backend, self.spec.model_path, report, self.spec.threads,
                                                      self.options.tensorrt_accelerator)
        plan: Optional[str] = None
        if self.backend == "tensorrt":
            with self.stage("convert"):
                plan = self._plan()
        try:
            config = repository.config_pbtxt(self.backend, inputs, outputs, self.spec.device, self.spec.threads,
                                             parameters, accelerator)
        except ValueError as e:
            raise UnsupportedError("Triton's model configuration cannot describe this model: {}".format(e)) from None
        repository.write(self.server.repo, self.backend, config, self.spec.model_path, self.spec.model_files, plan)
        with self.stage("compile"):  # the backend loads the model: ORT session, TensorRT engine
            _sibling("client").load_model(self.client, _MODEL, self.options.protocol, self.options.startup_timeout_s,
                                          self.server.log_tail)
        self.requested = [self.protocol_module.InferRequestedOutput(name) for name in self.output_names]
        self.precision = "fp32"  # as no backend is asked for less; precision_detail says the source
        self.settings.update(
            backend=self.backend, instances="1 x {}".format("KIND_CPU" if self.spec.device == "cpu" else "KIND_GPU"),
            max_batch_size=0, dynamic_batching=False,
            timed_call="client.infer() over {} on loopback: request serialization, transport, queue, backend, "
                       "response and its parsing".format(self.options.protocol))
        settings, self.precision_detail = backends.described(self.backend, report, accelerator, self.spec.threads,
                                                             self.settings["server"].split()[1])
        self.settings.update(settings)

    def _plan(self) -> str:
        """The tensorrt backend's plan, from the cache when this model was built before."""
        plan = _sibling("plan")
        shapes = plan.input_shapes(self.samples)
        path = self.cache_file("-triton.plan", plan.cache_parts(self.spec.device_index, shapes))
        self.settings["plan"] = os.path.basename(path)
        if not os.path.isfile(path):
            plan.build(self.spec.model_path, shapes, path)
        return path

    def infer_impl(self, feeds: Sample) -> Any:
        client = self.protocol_module
        inputs = []
        for name, array in feeds.items():
            tensor = client.InferInput(name, list(array.shape), self._dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        result = self.client.infer(_MODEL, inputs, outputs=self.requested)
        return {name: result.as_numpy(name) for name in self.output_names}

    def _dtype(self, dtype: Any) -> str:
        from tritonclient.utils import np_to_triton_dtype

        return np_to_triton_dtype(dtype)

    def instrument_impl(self, on: bool) -> None:
        """Triton's statistics of each warm-up request: queue, compute_input (inputs into the
        backend: for the python backend, into its shared memory), compute_infer (the model),
        compute_output, `server_other` (the rest of the server's request time) and
        `client_and_transport` (this call's time outside the server: serialization, the
        transport, parsing). An instance attribute shadows `infer_impl` while on, so the timed
        loop calls the bare method."""
        if on:
            self._stats_before = self._statistics()
            self.infer_impl = self._infer_instrumented  # type: ignore[method-assign]
            return
        self.__dict__.pop("infer_impl", None)
        # The row's resources are this (client) process's; the server's own, after warm-up:
        self.settings["server_processes"] = self.server.processes(
            "python backend stub" if self.backend == "python" else "child")

    def _infer_instrumented(self, feeds: Sample) -> Any:
        start = time.perf_counter()
        out = TritonRunner.infer_impl(self, feeds)
        call_ms = (time.perf_counter() - start) * 1e3
        self._stats_before, parts = _sibling("client").request_phases(self._statistics, self._stats_before, call_ms)
        for phase, ms in parts.items():
            self.phase_ms.setdefault(phase, []).append(ms)
        return out

    def _statistics(self) -> Dict[str, tuple]:
        return _sibling("client").statistics(self.client, _MODEL, self.options.protocol)

    def release_impl(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except Exception:
                pass
            self.client = None
        if self.server is not None:
            code = self.server.stop()
            try:  # the server's own log goes into the runner's log
                with open(self.server.log_path, errors="replace") as f:
                    print("--- tritonserver log (exit code {}) ---\n{}".format(code, f.read()), flush=True)
            except OSError:
                pass
            self.server = None
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = ""


_MODEL = "model"  # repository.MODEL, spelled here so the timed call reads no module attribute


def _sibling(name: str) -> Any:
    """A module beside this file (a runner is loaded from its path, not imported as a package)."""
    import importlib.util
    import sys

    key = "e2e_triton_" + name
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, os.path.join(os.path.dirname(__file__), name + ".py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        sys.modules[key] = module
    return sys.modules[key]

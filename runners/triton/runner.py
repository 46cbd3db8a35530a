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
import json
import os
import shutil
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from shared import EngineUnavailable, Runner, Sample, UnsupportedError

PROTOCOLS = ("http", "grpc")
BACKENDS = ("auto", "onnxruntime", "tensorrt", "python")
PHASES = ("queue", "compute_input", "compute_infer", "compute_output")
GPU_IMAGE_HINT = ("NVIDIA's tritonserver image has them: build e2e-triton from it with "
                  "`TRITON_DOCKERFILE=gpu.Dockerfile e2e images build triton` (runners/triton/README.md)")


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
        if self.installation is None:
            raise EngineUnavailable("no tritonserver in this environment: install runners/triton/requirements.txt "
                                    "(nvidia-pytriton bundles one) or use the e2e-triton image")
        have = sorted(self.installation.backends)
        gpu = self.spec.device != "cpu"
        wanted = self.options.backend
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
                self.installation.origin, wanted, ", ".join(have) or "none", GPU_IMAGE_HINT))
        if wanted == "python" and self.installation.pytriton and self.installation.stub is None:
            raise EngineUnavailable("nvidia-pytriton has no python-backend stub for this Python ({}); it ships "
                                    "stubs for 3.8-3.13".format(_python_version()))
        if wanted == "python" and self.installation.pytriton and not server.libpython():
            raise EngineUnavailable(
                "the python backend's stub needs this Python's shared library libpython{0}.so.1.0 and {1} has "
                "none in {2}: install libpython{0} (Debian, Ubuntu) or use a Python built with --enable-shared".format(
                    "{}.{}".format(*_python_version().split(".")[:2]), os.path.realpath(sys.executable),
                    sysconfig.get_config_var("LIBDIR")))
        if self.options.tensorrt_accelerator and (wanted != "onnxruntime" or not gpu):
            raise EngineUnavailable("tensorrt_accelerator is the onnxruntime backend's, on a GPU")
        self.backend = wanted

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
            self.client, self._url = self._new_client(url), url
        return bool(self.client.is_server_ready())

    def _new_client(self, url: str) -> Any:
        if self.options.protocol == "grpc":
            import tritonclient.grpc as client

            self.protocol_module = client
            return client.InferenceServerClient(url=url)
        import tritonclient.http as client

        self.protocol_module = client
        # network_timeout bounds every call: a TensorRT build in load_model takes minutes, and a
        # slow model's inference as long as it needs (the launcher's --timeout bounds the run)
        return client.InferenceServerClient(url=url, connection_timeout=60.0,
                                            network_timeout=max(3600.0, self.options.startup_timeout_s))

    def load_impl(self) -> None:
        repository = _sibling("repository")
        inputs, outputs = repository.onnx_io(self.spec.model_path)
        self.output_names = [t.name for t in outputs]
        report = os.path.join(self.workdir, "session.json")
        parameters, accelerator, plan = {}, None, None  # type: Dict[str, str], Optional[Dict[str, str]], Optional[str]
        if self.backend == "python":
            parameters = {"onnx_path": os.path.abspath(self.spec.model_path), "report": report,
                          "intra_op_num_threads": str(self.spec.threads)}
        elif self.backend == "tensorrt":
            with self.stage("convert"):
                plan = self._plan()
        elif self.options.tensorrt_accelerator:
            accelerator = {"precision_mode": "FP32", "max_workspace_size_bytes": str(1 << 30)}
        try:
            config = repository.config_pbtxt(self.backend, inputs, outputs, self.spec.device, self.spec.threads,
                                             parameters, accelerator)
        except ValueError as e:
            raise UnsupportedError("Triton's model configuration cannot describe this model: {}".format(e)) from None
        repository.write(self.server.repo, self.backend, config, self.spec.model_path, self.spec.model_files, plan)
        with self.stage("compile"):  # the backend loads the model: ORT session, TensorRT engine
            self._load_model()
        self.requested = [self.protocol_module.InferRequestedOutput(name) for name in self.output_names]
        # fp32, as no backend is asked for less: the python and onnxruntime backends run ORT on the
        # fp32 export, the accelerator is set to precision_mode FP32 and the tensorrt plan is built
        # with no FP16/INT8 flag (TF32 as TensorRT's default); precision_detail says the source
        self.precision = "fp32"
        self.settings.update(
            backend=self.backend, instances="1 x {}".format("KIND_CPU" if self.spec.device == "cpu" else "KIND_GPU"),
            max_batch_size=0, dynamic_batching=False,
            timed_call="client.infer() over {} on loopback: request serialization, transport, queue, backend, "
                       "response and its parsing".format(self.options.protocol))
        if self.backend == "python":
            with open(report) as f:
                session = json.load(f)
            summary = "python backend running onnxruntime {} inside Triton {}".format(
                session["onnxruntime"], self.settings["server"].split()[1])
            self.settings.update(runs=summary, onnxruntime_in_backend=session)
            self.precision_detail = {"runs": summary, "source": "the ONNX Runtime session inside the backend",
                                     "input_types": session["input_types"], "providers": session["providers"]}
        elif self.backend == "onnxruntime":
            summary = "Triton's native onnxruntime backend{}".format(
                " with ONNX Runtime's TensorRT execution provider (precision_mode FP32)" if accelerator else "")
            self.settings.update(runs=summary, intra_op_thread_count=self.spec.threads, inter_op_thread_count=1,
                                 execution_mode="sequential", accelerator=accelerator or {})
            self.precision_detail = {"runs": summary, "source": "config.pbtxt (the backend reports nothing back)"}
        else:
            self.settings.update(runs="Triton's tensorrt backend on a plan built here (fp32)")
            self.precision_detail = {"runs": self.settings["runs"], "source": "the plan's builder flags (none: fp32)"}

    def _load_model(self) -> None:
        from tritonclient.utils import InferenceServerException

        model = _sibling("repository").MODEL
        try:
            if self.options.protocol == "grpc":
                self.client.load_model(model, client_timeout=self.options.startup_timeout_s)
            else:
                self.client.load_model(model)
        except InferenceServerException as e:
            message = "Triton could not load the model: {} (server log: {})".format(e.message(), self.server.log_tail(6))
            if "NOT_IMPLEMENTED" in message or "Could not find an implementation" in message:
                raise UnsupportedError(message, operator=_operator_in(message)) from None
            raise RuntimeError(message) from None

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
        server = _sibling("server")
        processes = []
        for i, pid in enumerate(self.server.pids()):
            peak = server.peak_rss_mb(pid)
            role = "tritonserver" if i == 0 else "python backend stub" if self.backend == "python" else "child"
            processes.append({"role": role, "pid": pid, "peak_rss_mb": None if peak is None else round(peak, 1)})
        self.settings["server_processes"] = processes

    def _infer_instrumented(self, feeds: Sample) -> Any:
        start = time.perf_counter()
        out = TritonRunner.infer_impl(self, feeds)
        call_ms = (time.perf_counter() - start) * 1e3
        # The server may record a request's statistics just after sending its response: wait
        # (briefly) until the success count includes this request, so the delta is this request's.
        expected, deadline = self._stats_before["success"][0] + 1, time.monotonic() + 0.5
        now = self._statistics()
        while now["success"][0] < expected and time.monotonic() < deadline:
            time.sleep(0.001)
            now = self._statistics()
        delta = {k: (now[k][0] - self._stats_before[k][0], now[k][1] - self._stats_before[k][1]) for k in now}
        self._stats_before = now
        if delta["success"][0] == 1:  # exactly this request
            parts = {k: delta[k][1] / 1e6 for k in PHASES}
            server_ms = delta["success"][1] / 1e6
            parts["server_other"] = max(0.0, server_ms - sum(parts.values()))
            parts["client_and_transport"] = max(0.0, call_ms - server_ms)
            for phase, ms in parts.items():
                self.phase_ms.setdefault(phase, []).append(ms)
        return out

    def _statistics(self) -> Dict[str, tuple]:
        """Cumulative (count, ns) per statistic of the model, from the statistics extension."""
        stats = self.client.get_inference_statistics(_MODEL, as_json=True) if self.options.protocol == "grpc" \
            else self.client.get_inference_statistics(_MODEL)
        inference = stats["model_stats"][0].get("inference_stats", {})
        # gRPC's JSON writes 64-bit counters as strings and leaves zero counters out
        return {k: (int(inference.get(k, {}).get("count", 0)), int(inference.get(k, {}).get("ns", 0)))
                for k in ("success",) + PHASES}

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


def _python_version() -> str:
    import platform

    return platform.python_version()


def _operator_in(message: str) -> Optional[str]:
    """ONNX Runtime says "Could not find an implementation for Foo(13) node with name '...'"."""
    marker = "implementation for "
    if marker in message:
        return message.split(marker, 1)[1].split("(", 1)[0].strip()
    return None

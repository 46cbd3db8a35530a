"""The pure parts of ONNX Runtime's GPU runners (`ort_cuda`, `ort_trt`) and of the session code
they share with `ort` (shared/ort.py): no GPU and no onnxruntime-gpu needed. On a machine without
an NVIDIA GPU their rows are skipped before launch (tests/integration/test_bench.py, test_cli.py)."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from coordinator.engines import discover, skip_reason
from shared import EngineUnavailable, RunSpec
from shared.ort import nodes_by_provider
from shared.tensors import profile_shapes
from tests.unit.test_runner_modules import load_runner

ROOT = Path(__file__).parents[2]
ort_cuda = load_runner(ROOT / "runners" / "ort_cuda" / "runner.py")
ort_trt = load_runner(ROOT / "runners" / "ort_trt" / "runner.py")


def spec(engine, device="cuda:0", precision="fp32", **kw):
    return RunSpec(engine=engine, model_path="/m.onnx", inputs_path="/i.npz", device=device, precision=precision, **kw)


@pytest.mark.parametrize("engine", ["ort_cuda", "ort_trt"])
def test_the_gpu_providers_are_skipped_on_a_cpu_with_the_reason(engine):
    reason = skip_reason(discover()[engine], "cpu", "fp32")
    assert reason.startswith(f"{discover()[engine].name} does not run on cpu (it runs on: cuda)")
    assert "--device cuda" in reason


@pytest.mark.parametrize("module, cls", [(ort_cuda, "OrtCudaRunner"), (ort_trt, "OrtTrtRunner")])
def test_a_gpu_provider_asked_for_the_cpu_says_so_before_importing_anything(module, cls):
    runner = getattr(module, cls)(spec("x", device="cpu"))
    with pytest.raises(EngineUnavailable, match="runs only on NVIDIA GPUs"):
        runner.available_impl()


def test_ort_is_the_cpu_provider_only():
    assert discover()["ort"].devices == ("cpu",)
    assert skip_reason(discover()["ort"], "cuda:0", "fp32").startswith("ONNX Runtime does not run on cuda")


@pytest.mark.parametrize("options, message", [
    ({"builder_optimization_level": 6}, "builder_optimization_level must be one of 0, 1, 2, 3, 4, 5"),
    ({"workspace_mb": -1}, "workspace_mb must be an integer >= 0"),
    ({"min_subgraph_size": 0}, "min_subgraph_size must be an integer >= 1"),
    ({"engine_cache": "yes"}, "engine_cache must be true or false"),
    ({"op_types_to_exclude": ["NonZero"]}, "op_types_to_exclude must be a comma-separated list"),
    ({"execution_mode": "async"}, "execution_mode must be one of sequential, parallel"),  # ORT's own options too
])
def test_ort_trt_options_name_what_is_allowed(options, message):
    with pytest.raises(ValueError, match=message):
        ort_trt.Options(**options)


@pytest.mark.parametrize("options, message", [
    ({"cudnn_conv_algo_search": "FAST"}, "cudnn_conv_algo_search must be one of EXHAUSTIVE, HEURISTIC, DEFAULT"),
    ({"tf32": 1}, "tf32 must be true or false"),
])
def test_ort_cuda_options_name_what_is_allowed(options, message):
    with pytest.raises(ValueError, match=message):
        ort_cuda.Options(**options)


def trt_runner(tmp_path, precision="fp16", **options):
    runner = ort_trt.OrtTrtRunner(spec("ort_trt", precision=precision, cache_dir=str(tmp_path), model_sha256="ab" * 32))
    runner.options, runner.tensorrt = ort_trt.Options(**options), "10.16.1.11"
    runner.samples = [{"image": np.zeros((3, 480, 640), np.float32)}, {"image": np.zeros((3, 400, 600), np.float32)}]
    return runner


def test_ort_trt_configures_the_tensorrt_ep_as_its_documentation_says(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", SimpleNamespace(__version__="1.31.1"))
    (trt, options), (cuda, cuda_options), cpu = trt_runner(tmp_path, workspace_mb=2048).providers()
    assert (trt, cuda, cpu) == ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    assert options["trt_fp16_enable"] and not options["trt_int8_enable"] and cuda_options["use_tf32"] == 0
    assert options["trt_max_workspace_size"] == 2048 << 20 and "trt_op_types_to_exclude" not in options
    assert options["trt_engine_cache_enable"] and options["trt_timing_cache_enable"]
    engines, timing = Path(options["trt_engine_cache_path"]), Path(options["trt_timing_cache_path"])
    assert engines.parent == timing.parent == tmp_path and engines.is_dir() and timing.is_dir()
    assert engines.name.endswith(".own-cache") and "10.16.1.11" in timing.name  # e2e cache list: the EP's own
    # one profile spanning the inputs, so the engines are built at session creation
    assert options["trt_profile_min_shapes"] == "image:3x400x600"
    assert options["trt_profile_opt_shapes"] == "image:3x480x640"
    assert options["trt_profile_max_shapes"] == "image:3x480x640"
    # another precision or build option: another engine folder (ORT's own names do not key on them)
    (_, other), _, _ = trt_runner(tmp_path, precision="fp32", workspace_mb=2048).providers()
    assert other["trt_engine_cache_path"] != options["trt_engine_cache_path"]


def test_ort_trt_without_caches_or_profile_leaves_them_to_ort(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", SimpleNamespace(__version__="1.31.1"))
    (_, options), _, _ = trt_runner(tmp_path, engine_cache=False, timing_cache=False, profile=False,
                                    op_types_to_exclude="NonMaxSuppression").providers()
    assert not any(k.startswith(("trt_profile", "trt_engine_cache_path", "trt_timing_cache_path")) for k in options)
    assert options["trt_op_types_to_exclude"] == "NonMaxSuppression"


def test_profile_shapes_span_the_samples_and_a_name_ort_cannot_parse_gives_none():
    shapes = profile_shapes([{"x": np.zeros((1, 3, 8, 8))}, {"x": np.zeros((1, 3, 4, 16))}])
    assert shapes == {"x": [[1, 3, 4, 8], [1, 3, 8, 8], [1, 3, 8, 16]]}
    assert ort_trt.profile_options({"a:b": [[1], [1], [1]]}) == {}


@pytest.mark.parametrize("precision, flags, in_trt, ran", [
    ("fp16", {"trt_fp16_enable": "1", "trt_int8_enable": "0"}, 120, "fp16"),
    ("fp16", {"trt_fp16_enable": "1"}, 0, "fp32"),  # nothing went to TensorRT: CUDA ran the fp32 graph
    ("int8", {"trt_int8_enable": "0"}, 120, "fp32"),  # the flag did not hold
    ("fp32", {"trt_fp16_enable": "0"}, 120, "fp32"),
])
def test_ort_trt_reads_the_precision_back_from_the_ep_options_and_the_nodes_it_got(tmp_path, precision, flags, in_trt, ran):
    runner = trt_runner(tmp_path, precision=precision)
    runner.settings = {"provider_options": {"TensorrtExecutionProvider": flags},
                       "nodes_by_provider": {"TensorrtExecutionProvider": {"nodes": in_trt}}}
    got, detail = runner.read_precision(None)
    assert got == ran and detail["nodes_in_tensorrt"] == in_trt and "per-layer formats" in detail["note"]


def test_the_nodes_each_provider_got_name_the_fallback():
    def node(name, op):
        return SimpleNamespace(name=name, op_type=op)

    def subgraph(ep, nodes):
        return SimpleNamespace(ep_name=ep, get_nodes=lambda: nodes)

    session = SimpleNamespace(get_provider_graph_assignment_info=lambda: [
        subgraph("TensorrtExecutionProvider", [node("conv", "Conv"), node("relu", "Relu")]),
        subgraph("TensorrtExecutionProvider", [node("conv2", "Conv")]),
        subgraph("CUDAExecutionProvider", [node("nms", "NonMaxSuppression")])])
    assert nodes_by_provider(session, "TensorrtExecutionProvider") == {
        "TensorrtExecutionProvider": {"subgraphs": 2, "nodes": 3, "ops": {"Conv": 2, "Relu": 1}},
        "CUDAExecutionProvider": {"subgraphs": 1, "nodes": 1, "ops": {"NonMaxSuppression": 1}, "node_names": ["nms"]}}

    def unrecorded():
        raise RuntimeError("session.record_ep_graph_assignment_info was not enabled")

    assert nodes_by_provider(SimpleNamespace(get_provider_graph_assignment_info=unrecorded), "x") == {}


def test_ort_trt_int8_engines_are_keyed_by_their_calibration_too(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", SimpleNamespace(__version__="1.31.1"))
    a, b = trt_runner(tmp_path, precision="int8"), trt_runner(tmp_path, precision="int8")
    b.samples = [{"image": np.ones((3, 480, 640), np.float32)}]
    (_, first), _, _ = a.providers()
    (_, second), _, _ = b.providers()
    assert first["trt_int8_enable"] and first["trt_engine_cache_path"] != second["trt_engine_cache_path"]

"""OpenPPL (ppl.nn) runner: the x86 engine for cpu, the CUDA engine for cuda:N.

ppl.nn has no wheel: `pyppl` exists only in the e2e-openppl image, built from source. The calls
follow ppl.nn's own Python tool, tools/pplnn.py. ppl.nn reports errors as status codes and logs
the details through C stdio, so the loading steps read stderr to name the operator it refused.
"""
import contextlib
import hashlib
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from shared import EngineUnavailable, Runner, Sample, UnsupportedError

NO_WHEEL = ("OpenPPL has no wheel: it runs only in its Docker image (e2e images build openppl), which compiles "
            "ppl.nn v0.9.2 from source (about 50 minutes on 2 cores); without GitHub access, give it the source "
            "archives with --sources DIR (runners/openppl/README.md)")
OPSET_HINT = ("ppl.nn v0.9.2 registers most ops only up to opsets 11-16 (e2e exports a PyTorch model at opset 11 "
              "for it); an op it has at no opset must be rewritten out of the model")
# ppl.nn v0.9.2's errors that name an operator it has no kernel for (src/ppl/nn/...; some give no opset):
#   "unsupported op: domain[], type[Foo], version[11]"              models/onnx/graph_parser.cc, then
#   "ParseNodeInfo for node[/a/Foo] failed: unsupported"           (the node, on the next line)
#   "op[/a/Foo] with type[:Foo:11] is not supported."              optimizers/engine_graph_partitioner.cc
#   "cannot find creator for node[/a/Foo] of type[:Foo:11]"        engines/{x86,cuda}/engine.cc
#   "cannot find creator for X86OptKernel[/a/Foo] of type[:Foo]"   engines/x86/optimizer/opt_graph.cc
#   "cannot find creator for X86OptKernel[/a/Foo] type[:Foo]"      engines/x86/optimizer/rules/utils.h
#   "cannot find creator for CudaOptKernel[/a/Foo] type[:Foo]"     engines/cuda/optimizer/opt_graph.cc
OP_PATTERNS = (re.compile(r"op: domain\[[^\]]*\], type\[(?P<op>[^\]]+)\], version\[(?P<v>\d+)\]"),
               re.compile(r"(?:node|OptKernel|\bop)\[(?P<node>[^\]]*)\] (?:of |with )?"
                          r"type\[[^:\]]*:(?P<op>[^:\]]+)(?::(?P<v>\d+))?\]"))
PARSED_NODE = re.compile(r"for node\[(?P<node>[^\]]*)\] failed")
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Options:
    mm_policy: str = "perf"  # "perf": x86 MM_MRU / cuda MM_BEST_FIT; "mem": MM_COMPACT (pplnn.py's --mm-policy)
    quick_select: bool = False  # cuda: take default kernels instead of timing the candidates per Conv

    def __post_init__(self) -> None:
        if self.mm_policy not in ("perf", "mem"):
            raise ValueError("mm_policy must be one of perf, mem")
        if not isinstance(self.quick_select, bool):
            raise ValueError("quick_select must be true or false")


class OpenPPLRunner(Runner):
    packages = ["numpy", "onnx"]
    Options = Options

    def available_impl(self) -> None:
        try:
            from pyppl import nn as pplnn
        except ImportError as e:  # also a CUDA build started without a GPU (no libcuda.so.1)
            raise EngineUnavailable("{} (import: {})".format(NO_WHEEL, e)) from None
        kind = "x86" if self.spec.device == "cpu" else "cuda"
        if not hasattr(pplnn, kind):  # the submodule exists only if the build enabled that engine
            how = "e2e images build openppl-cuda (the CUDA variant)" if kind == "cuda" else "-DPPLNN_USE_X86_64=ON"
            raise EngineUnavailable(f"this ppl.nn build has no {kind} engine; build the image with {how}")
        if kind == "x86" and not {"avx512f", "fma"} & _cpu_flags():
            raise EngineUnavailable("ppl.nn's x86 engine needs AVX512 or FMA3, and this CPU has neither")

    def version_impl(self) -> str:
        from pyppl import nn as pplnn

        self.settings["commit"] = pplnn.PPLNN_COMMIT_STR
        return f"{pplnn.PPLNN_VERSION_MAJOR}.{pplnn.PPLNN_VERSION_MINOR}.{pplnn.PPLNN_VERSION_PATCH}"

    def load_impl(self) -> None:
        from pyppl import common as pplcommon
        from pyppl import nn as pplnn

        self.rc_ok, self.ret_str = pplcommon.RC_SUCCESS, pplcommon.GetRetCodeStr
        self.dtypes = {getattr(pplcommon, "DATATYPE_" + k): np.dtype(v) for k, v in (
            ("FLOAT32", "float32"), ("FLOAT16", "float16"), ("FLOAT64", "float64"), ("INT8", "int8"),
            ("INT32", "int32"), ("INT64", "int64"), ("UINT8", "uint8"), ("BOOL", "bool"))}
        first = self.samples[0]
        engine = self._create_engine(pplnn, [list(a.shape) for a in first.values()])
        builder = pplnn.onnx.RuntimeBuilderFactory.Create()
        if not builder:
            raise RuntimeError("ppl.nn could not create an ONNX runtime builder; see runner.log")
        with self.stage("convert"):
            model_path, scratch = self._model_for_engine()
            try:
                self._call(lambda: builder.LoadModelFromFile(model_path), "read the ONNX model",
                           lacking="ppl.nn's ONNX parser")
            finally:
                if scratch:
                    os.remove(model_path)
        with self.stage("compile"):  # partition and optimize for the engine, pick kernels
            resources = pplnn.onnx.RuntimeBuilderResources()
            resources.engines = [engine]
            self._call(lambda: builder.SetResources(resources), "take the engine")
            self._call(builder.Preprocess, "prepare the graph for its engine")
            self.runtime = builder.CreateRuntime()
            if not self.runtime:
                raise RuntimeError("ppl.nn could not create a runtime; see runner.log")
        self.builder, self.engine = builder, engine
        self.sync = getattr(self.runtime, "Sync", None)  # the CUDA engine may run asynchronously
        names = [self.runtime.GetInputTensor(i).GetName() for i in range(self.runtime.GetInputCount())]
        if set(names) - set(first):
            raise RuntimeError(f"the model's inputs are {names}, the samples give {list(first)}")

    def _model_for_engine(self) -> Tuple[str, bool]:
        """The model ppl.nn loads, and whether it is a scratch file to delete once loaded. For the x86
        engine, a copy with the rewrites of rewrites.py (what it lacks or mishandles, each replaced by
        an equivalent), cached for the coordinator's exports; a marked copy of `e2e explain` (no
        model_sha256) is used once: its rewrite is a scratch file, not a cache entry of its size."""
        if self.spec.device != "cpu":
            return self.spec.model_path, False
        import onnx

        model, done, code = _rewritten_for_x86(self.spec.model_path)
        if not done:
            return self.spec.model_path, False
        self.settings["rewrites"] = done
        if self.spec.model_sha256:
            return self.cached("-x86.onnx", ["rewrites", code, onnx.__version__],
                               lambda tmp: onnx.save(model, tmp)), False
        handle, path = tempfile.mkstemp(suffix=".onnx")
        os.close(handle)
        onnx.save(model, path)
        return path, True

    def _create_engine(self, pplnn: Any, dims: List[List[int]]) -> Any:
        spec = self.spec
        engine, self.precision, settings, detail = _new_engine(pplnn, spec, self.options)
        self.settings.update(settings)
        if detail:
            self.precision_detail = detail
        if not engine:
            raise RuntimeError(f"ppl.nn could not create its {self.settings['engine']} engine; see runner.log")
        if spec.device != "cpu":  # option names as in tools/pplnn.py; older builds may lack them
            if self.options.quick_select:
                self._check(engine.Configure(pplnn.cuda.ENGINE_CONF_USE_DEFAULT_ALGORITHMS), "quick-select")
            dims_option = getattr(pplnn.cuda, "ENGINE_CONF_SET_INPUT_DIMS", None)
            if dims_option is not None:  # a hint for kernel selection; samples are keyed in graph input order
                self._check(engine.Configure(dims_option, dims), "take the input dims")
                self.settings["input_dims_hint"] = dims
        self.settings["mm_policy"] = self.options.mm_policy
        return engine

    def _call(self, step: Callable[[], Any], what: str, lacking: str = "") -> None:
        """Run one loading step; a failure names the operator when ppl.nn's log does. `lacking`: what
        lacks the operator then (default: the engine)."""
        with _stderr_copied() as log:
            status = step()
        if status == self.rc_ok:
            return
        op, node, version = _refused_op("".join(log))
        message = f"ppl.nn could not {what}: {self.ret_str(status)}"
        if op:
            opset = f" at opset {version}" if version else ""
            lacking = lacking or f"the {self.settings.get('engine')} engine"
            message += f"; {lacking} has no {op}{opset}. {OPSET_HINT}"
        raise UnsupportedError(message, operator=op, node=node)

    def _check(self, status: Any, what: str) -> None:
        if status != self.rc_ok:
            raise RuntimeError(f"ppl.nn could not {what}: {self.ret_str(status)}")

    def infer_impl(self, feeds: Sample) -> Sample:
        runtime = self.runtime
        for i in range(runtime.GetInputCount()):
            tensor = runtime.GetInputTensor(i)
            # ConvertFromHost reads the buffer as C-contiguous and reshapes the tensor to it
            self._check(tensor.ConvertFromHost(np.ascontiguousarray(feeds[tensor.GetName()])),
                        f"take input {tensor.GetName()!r}")
        self._check(runtime.Run(), "run the model")
        if self.sync is not None:
            self._check(self.sync(), "finish the run")
        outputs = {}
        for i in range(runtime.GetOutputCount()):
            tensor = runtime.GetOutputTensor(i)
            name, shape = tensor.GetName(), tensor.GetShape()
            dims = shape.GetDims()
            if 0 in dims:  # ConvertToHost returns nothing for an empty tensor: give its real shape, no data
                if shape.GetDataType() not in self.dtypes:
                    raise RuntimeError(f"output {name!r} is empty and of a data type e2e cannot name")
                outputs[name] = np.empty(dims, dtype=self.dtypes[shape.GetDataType()])
                continue
            data = tensor.ConvertToHost()  # a fresh host buffer (py_tensor.cc), safe to keep
            if not data:
                raise RuntimeError(f"ppl.nn could not copy output {name!r} to the host; see runner.log")
            outputs[name] = np.asarray(data)
        return outputs

    def release_impl(self) -> None:
        self.runtime = self.builder = self.engine = None


def _new_engine(pplnn: Any, spec: Any, options: Options) -> Tuple[Any, str, Dict[str, Any], Dict[str, str]]:
    """ppl.nn's engine for the device (None if it could not be made), the precision it runs an fp32
    model at, the row's settings of it and, where that precision is not the model's, the detail."""
    perf = options.mm_policy == "perf"
    if spec.device == "cpu":
        x86 = pplnn.x86.EngineOptions()
        x86.mm_policy = pplnn.x86.MM_MRU if perf else pplnn.x86.MM_COMPACT
        return pplnn.x86.EngineFactory.Create(x86), "fp32", {  # the x86 engine is fp32 only
            "engine": "x86", "isa": "avx512" if "avx512f" in _cpu_flags() else "fma3",
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset")}, {}
    cuda = pplnn.cuda.EngineOptions()
    cuda.device_id = spec.device_index
    cuda.mm_policy = pplnn.cuda.MM_BEST_FIT if perf else pplnn.cuda.MM_COMPACT
    # ppl.nn's CUDA Conv/Gemm kernels are fp16 (or int8) only; bridge nodes convert around them
    # (ppl.nn issues #9 and #561): an fp32 model does not run at fp32 there.
    return pplnn.cuda.EngineFactory.Create(cuda), "fp16", {
        "engine": "cuda", "device_id": spec.device_index, "quick_select": options.quick_select}, {
        "fp16": "Conv and Gemm (ppl.nn's CUDA kernels for them are fp16 or int8 only), and the ops downstream of "
                "them", "fp32": "the ops before the first Conv/Gemm",
        "conversions": "ppl.nn inserts bridge nodes between the two"}


def _rewritten_for_x86(model_path: str) -> Tuple[Any, Dict[str, int], str]:
    """The model with rewrites.py's rewrites for the x86 engine applied, what they did (empty: none
    applied), and rewrites.py's hash: a change to the rewrites makes a new cached file."""
    import onnx

    rewrites = _sibling("rewrites")
    model = onnx.load(model_path)
    done = rewrites.for_x86(model)
    with open(rewrites.__file__, "rb") as f:
        code = hashlib.sha256(f.read()).hexdigest()[:16]
    return model, done, code


def _refused_op(log: str) -> Tuple[Optional[str], Optional[str], Optional[str]]:
    log = ANSI_COLOUR.sub("", log)  # ppl.common's logger colours each line's prefix: "...:207] \x1b[0mop[..."
    for pattern in OP_PATTERNS:
        found = pattern.search(log)
        if found:
            node = found.groupdict().get("node")
            if node is None:
                parsed = PARSED_NODE.search(log, found.end())
                node = parsed.group("node") if parsed else None
            return found.group("op"), node, found.group("v")
    return None, None, None


@contextlib.contextmanager
def _stderr_copied() -> Iterator[List[str]]:
    """Capture fd 2 (ppl.nn's C-level logger) while a step runs, then pass it on to the runner log."""
    text = []  # type: List[str]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield text
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text.append(capture.read().decode("utf-8", "replace"))
            sys.stderr.write(text[0])
            sys.stderr.flush()


def _sibling(name: str) -> Any:
    """A module beside this file (a runner is loaded from its path, not imported as a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("e2e_openppl_" + name, os.path.join(os.path.dirname(__file__), name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()

"""torch.compile with the Inductor backend: TorchDynamo captures the PyTorch model's graphs from
its bytecode, Inductor generates C++/OpenMP kernels for the CPU (a C++ compiler is needed; Triton
kernels on CUDA). Ops Dynamo cannot capture (data-dependent output shapes: nonzero, unique, a
detector's NMS) split the model into several graphs run eagerly in between: the row records
these graph breaks and why.

Compilation happens at the model's first call: `load_impl` makes that call on the first input
(stage `compile`), so no compiling is timed. Inductor's caches (the FX graph cache, the compiled
kernels) live in e2e's cache dir, one folder per torch version; the row says whether they hit.
"""
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List

from shared import EngineUnavailable, ProtocolError, Runner, Sample, atomic, torch_model

# torch.compile's modes for Inductor; "max-autotune" differs from its no-cudagraphs twin on CUDA only
MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")


@dataclass
class Options:
    mode: str = "default"
    dynamic: bool = False  # False: shapes are specialised (a changed shape recompiles, as static)
    backend: str = "inductor"  # any torch._dynamo backend; `mode` applies to inductor only

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError("mode must be one of {}, got {!r}".format(", ".join(MODES), self.mode))
        if not isinstance(self.dynamic, bool):
            raise ValueError("dynamic must be true or false, got {!r}".format(self.dynamic))
        if not isinstance(self.backend, str) or not self.backend:
            raise ValueError("backend must be the name of a torch._dynamo backend, got {!r}".format(self.backend))
        if self.backend != "inductor" and self.mode != "default":
            raise ValueError("mode {!r} is Inductor's; backend {!r} takes mode default".format(self.mode, self.backend))


class InductorRunner(Runner):
    packages = ["torch", "torchvision", "numpy"]
    Options = Options

    def available_impl(self) -> None:
        import torch
        import torch._dynamo

        if self.spec.device != "cpu" and not torch.cuda.is_available():
            raise EngineUnavailable("this torch build sees no CUDA device (torch {})".format(torch.__version__))
        if not self.spec.model_path.endswith(".json"):
            raise EngineUnavailable("no PyTorch model to compile: the model was given as an ONNX file")
        backends = torch._dynamo.list_backends(exclude_tags=())
        if self.options.backend not in backends:
            raise ProtocolError("bad engine options: backend must be one of {}, got {!r}".format(
                ", ".join(backends), self.options.backend))
        if self.options.backend == "inductor" and self.spec.device == "cpu":
            from torch._inductor.cpp_builder import get_cpp_compiler

            try:
                get_cpp_compiler()
            except Exception as e:
                raise EngineUnavailable("Inductor compiles C++ for the CPU and finds no compiler ({}): install "
                                        "g++ (Debian: apt-get install g++)".format(e)) from None

    def version_impl(self) -> str:
        import torch

        return torch.__version__

    def load_impl(self) -> None:
        import torch
        from torch._dynamo.utils import counters

        # Inductor reads its cache location from the environment, at its first compile.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = self.cache_dir = os.path.join(
            self.spec.cache_dir or os.path.join(os.path.expanduser("~"), ".cache"),
            "inductor-" + torch.__version__ + atomic.OWN_CACHE)
        module, card, _ = torch_model.prepare(self)
        o = self.options
        self.compiled = torch.compile(module, backend=o.backend, dynamic=o.dynamic,
                                      mode=o.mode if o.backend == "inductor" else None)
        counters.clear()
        with self.stage("compile"):
            # The first call compiles. A detector's later inputs change the shapes after its
            # graph breaks (the box counts) and recompile those graphs (with dynamic False, a
            # dim seen to change is made dynamic): one call per input, so none of it is timed.
            for sample in self.samples:
                self.infer_impl(sample)
        self.settings.update(
            threads=torch.get_num_threads(), interop_threads=torch.get_num_interop_threads(),
            mode=o.mode, dynamic=o.dynamic, backend=o.backend,
            compiled_on="each of the {} test input(s) once, in stage compile".format(len(self.samples)),
            **_capture_report(counters), cache_dir=self.cache_dir, compiler=_compiler(o.backend, self.device))
        # fp32 without autocast: Inductor compiles the float32 graph in its own types, with
        # torch_model.prepare's full fp32 math read back into the settings (TF32 off)
        self.precision = "fp32"
        if self.spec.precision in torch_model.REDUCED:
            # Dynamo captures the autocast region and Inductor compiles its casts: what the
            # arithmetic runs in is the eager model's under the same autocast, read back there.
            self.settings["autocast"] = torch_model.REDUCED[self.spec.precision] + " (read back on the eager model)"

            def eager() -> None:
                with torch.inference_mode(), torch_model.autocast(self):
                    module(*[torch.from_numpy(a).to(self.device) for a in self.samples[0].values()])
            self.precision = torch_model.ran_in(self, eager)

    def infer_impl(self, feeds: Sample) -> List[Any]:
        import torch

        with torch.inference_mode(), torch_model.autocast(self):
            outs = self.compiled(*[torch.from_numpy(a).to(self.device) for a in feeds.values()])
            return torch_model.host_arrays(outs)

    def outputs_impl(self, raw: List[Any]) -> Sample:
        return dict(zip(self.output_names, raw))

    def release_impl(self) -> None:
        self.compiled = None


def _capture_report(counters: Dict[str, Any]) -> Dict[str, Any]:
    """What Dynamo captured and Inductor compiled in the calls since the counters were cleared:
    the graphs, the graph breaks with each distinct reason's first line, the FX graph cache."""
    breaks = counters["graph_break"]
    reasons = Counter()  # type: Counter
    for reason, n in breaks.items():
        reasons[_reason(reason)] += n
    inductor = counters["inductor"]
    return {
        "graphs": counters["stats"]["unique_graphs"],
        "graph_breaks": sum(breaks.values()),
        "graph_break_reasons": dict(sorted(reasons.items())),
        "fx_graph_cache": {"hits": inductor["fxgraph_cache_hit"], "misses": inductor["fxgraph_cache_miss"]},
    }


def _reason(message: str) -> str:
    """A graph break's reason in one line: its title, and the operator where Dynamo names one
    ("Dynamic shape operator: aten.nonzero.default")."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    title = lines[0] if lines else ""
    context = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Developer debug context:")), "")
    return (title + (": " + context if context and " " not in context else ""))[:200]


def _compiler(backend: str, device: Any) -> str:
    """The C++ compiler Inductor generates CPU kernels with (Triton does CUDA's)."""
    if backend != "inductor":
        return ""
    if device.type != "cpu":
        return "triton"
    from torch._inductor.cpp_builder import get_cpp_compiler

    compiler = get_cpp_compiler()
    return shutil.which(compiler) or compiler
